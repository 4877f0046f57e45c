"""The Honeycomb query language as data: allowed keys, ops and their argument rules.

The rules in `assertions.honeycomb_rules` read these tables; changing what the
checker accepts means editing data here, not code there.
"""

TOP_LEVEL_KEYS = ("calculations", "filters", "filter_combination", "breakdowns", "orders",
                  "havings", "time_range", "start_time", "end_time", "granularity", "limit")

# Calculation ops that count rows and therefore take no column.
CALC_OPS_WITHOUT_COLUMN = ("COUNT", "CONCURRENCY")

# Calculation ops that aggregate a column and therefore need one.
CALC_OPS_WITH_COLUMN = ("COUNT_DISTINCT", "HEATMAP", "SUM", "AVG", "MAX", "MIN", "P001", "P01",
                        "P05", "P10", "P25", "P50", "P75", "P90", "P95", "P99", "P999",
                        "RATE_AVG", "RATE_SUM", "RATE_MAX")

CALC_OPS = CALC_OPS_WITHOUT_COLUMN + CALC_OPS_WITH_COLUMN

# Calculations that cannot be used in orders or havings.
UNORDERABLE_CALC_OPS = ("HEATMAP",)

CALC_KEYS = ("op", "column")

FILTER_OPS_WITHOUT_VALUE = ("exists", "does-not-exist")
FILTER_OPS_WITH_LIST_VALUE = ("in", "not-in")
FILTER_OPS_WITH_SINGLE_VALUE = ("=", "!=", ">", ">=", "<", "<=", "starts-with",
                                "does-not-start-with", "contains", "does-not-contain")
FILTER_OPS = FILTER_OPS_WITH_SINGLE_VALUE + FILTER_OPS_WITHOUT_VALUE + FILTER_OPS_WITH_LIST_VALUE

FILTER_KEYS = ("column", "op", "value")

# Keys seen in real filters that carry no meaning when empty; any other value is rejected.
FILTER_HARMLESS_EMPTY_KEYS = ("join_column",)

FILTER_COMBINATIONS = ("AND", "OR")
DEFAULT_FILTER_COMBINATION = "AND"

ORDER_DIRECTIONS = ("ascending", "descending")
ORDER_KEYS = ("op", "column", "order")

HAVING_OPS = ("=", "!=", ">", ">=", "<", "<=")
HAVING_KEYS = ("calculate_op", "column", "op", "value")

# Relative window, in seconds, of a query that names no time at all.
DEFAULT_TIME_RANGE = 7200

# granularity must lie within [window / GRANULARITY_MIN_DIVISOR, window / GRANULARITY_MAX_DIVISOR].
GRANULARITY_MIN_DIVISOR = 1000
GRANULARITY_MAX_DIVISOR = 10
