// usage: node validate.js FILE — validates an OpenAPI 3.x document (schema and
// $refs) with @apidevtools/swagger-parser; exit 0 if valid.
const SwaggerParser = require("@apidevtools/swagger-parser");
const file = process.argv[2];
SwaggerParser.validate(file)
  .then((api) => {
    console.log(`valid: ${api.info.title} ${api.info.version}, OpenAPI ${api.openapi}, ${Object.keys(api.paths).length} paths`);
  })
  .catch((err) => {
    console.error(`invalid: ${err.message}`);
    process.exit(1);
  });
