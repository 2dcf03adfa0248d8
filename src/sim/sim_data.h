/*
 * Static tables behind the simulator: surnames with their frequency, given-name
 * characters, regions (province / city / district with its GB/T 2260 code),
 * street and estate names, mobile prefixes, a product catalogue and the names of
 * the fictional logistics companies and software vendors. Internal to src/sim/.
 */
#ifndef MOAT_SIM_DATA_H
#define MOAT_SIM_DATA_H

#include <stdint.h>

typedef struct sim_weighted {
	const char *text;
	uint32_t weight; /* relative frequency */
} sim_weighted_t;

typedef struct sim_region {
	const char *province, *city, *district;
	const char *code; /* 6-digit administrative division code */
	uint32_t weight;
} sim_region_t;

typedef struct sim_product {
	const char *title;
	uint32_t min_cents, max_cents;
} sim_product_t;

typedef struct sim_category {
	const char *name; /* used in shop names: 服饰, 数码 … */
	const sim_product_t *products;
	uint32_t n_products;
} sim_category_t;

typedef struct sim_carrier_info {
	const char *id, *name, *waybill_prefix;
	uint32_t weight;
} sim_carrier_info_t;

typedef struct sim_isv_info {
	const char *party, *app, *name;
} sim_isv_info_t;

extern const sim_weighted_t sim_surnames[];
extern const uint32_t sim_n_surnames;
extern const char *const sim_given_chars[];
extern const uint32_t sim_n_given_chars;
extern const sim_region_t sim_regions[];
extern const uint32_t sim_n_regions;
extern const char *const sim_roads[];
extern const uint32_t sim_n_roads;
extern const char *const sim_estates[];
extern const uint32_t sim_n_estates;
extern const char *const sim_mobile_prefixes[];
extern const uint32_t sim_n_mobile_prefixes;
extern const sim_category_t sim_categories[];
extern const uint32_t sim_n_categories;
extern const char *const sim_shop_words[];
extern const uint32_t sim_n_shop_words;
extern const sim_carrier_info_t sim_carriers[];
extern const uint32_t sim_n_carriers;
extern const sim_isv_info_t sim_isvs[];
extern const uint32_t sim_n_isvs;
extern const char *const sim_scam_domains[];
extern const uint32_t sim_n_scam_domains;

#endif
