# Turns the file IN into a C source OUT defining NAME (a NUL-terminated char
# array) and NAME_len. Used to compile docs/openapi.yaml into the gateway.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* Generated from ${IN} by cmake/embed.cmake; do not edit. */\n#include <stddef.h>\nextern const char ${NAME}[];\nextern const size_t ${NAME}_len;\nconst char ${NAME}[] = {${bytes}0};\nconst size_t ${NAME}_len = ${len};\n")
