/* The look-up tables of serein.tree_tables.TableTrees scored row by row in compiled code.
 *
 * Built into libtreekernel.so when serein is installed (hatch_build.py) and called through ctypes
 * (serein/tree_kernel.py), which releases the GIL for the whole call. For each row: each table's
 * code (a number input's count of failing thresholds, found by a branchless search of its padded
 * cuts, or a category code, times its radix), the AND over the tables of the per-tree leaf masks
 * of those codes, and per tree the value of the mask's lowest set leaf, summed. numpy does the
 * same per block of rows in about 30 array passes; here a row's masks stay in the L1 cache.
 *
 * Plain C99 without machine-specific flags, so the library runs on any CPU of the platform.
 */
#include <stdint.h>

#define SEREIN_TREE_KERNEL_ABI 3

/* One input of a table: a number (cuts != 0) or a category code (cuts == 0), read from column
 * `column` of the numbers or the codes (see serein_block). */
typedef struct {
    int64_t column;
    const float *cuts;    /* the input's sorted thresholds padded with +inf to 2^m - 1 entries */
    int64_t padded;       /* entries of cuts */
    int64_t count;        /* thresholds before the padding */
    int64_t size;         /* the input's codes are below this */
    int64_t radix;        /* the input's code is multiplied by this in the table's code */
} serein_input;

/* The rows' inputs: value (row, column) at values[column * column_step + row * row_step], so that
 * one array per column and row-major matrices are read in place. */
typedef struct {
    const float *numbers;
    const int64_t *codes;
    int64_t number_column_step, number_row_step, code_column_step, code_row_step;
} serein_block;

/* One table: per-tree leaf masks, one row of `trees` masks per code. */
typedef struct {
    const void *masks;    /* the product of its inputs' sizes rows */
    int64_t first_input;  /* this table's inputs are inputs[first_input : first_input + n_inputs] */
    int64_t n_inputs;
} serein_table;

int64_t serein_tree_kernel_abi(void) { return SEREIN_TREE_KERNEL_ABI; }

/* How many thresholds t fail the test x <= t (those below x; all of them for NaN, which fails
 * every comparison): the search of TableTrees' numpy path, level by level. */
static inline int64_t failing(const serein_input *in, float x) {
    int64_t found = 0;
    for (int64_t step = (in->padded + 1) / 2; step; step >>= 1)
        found += (x <= in->cuts[found + step - 1]) ? 0 : step;
    return found < in->count ? found : in->count;
}

/* The code of `row` in `table`, or -1 when a category code puts it outside the table. */
static inline int64_t code_of(const serein_table *table, const serein_input *inputs, const serein_block *block,
                              int64_t row) {
    int64_t code = 0;
    const serein_input *in = inputs + table->first_input;
    for (int64_t j = 0; j < table->n_inputs; j++) {
        int64_t part = in[j].cuts
            ? failing(&in[j], block->numbers[in[j].column * block->number_column_step + row * block->number_row_step])
            : block->codes[in[j].column * block->code_column_step + row * block->code_row_step];
        if (part < 0 || part >= in[j].size) return -1;
        code += part * in[j].radix;
    }
    return code;
}

/* scores[row, s] = sum over trees k of leaf_values[(k * leaves + leaf_k + 1) * n_scores + s], where
 * leaf_k is the lowest set bit of the AND of the tables' masks for the row (leaf 0 of each tree in
 * leaf_values is unused). The bit of the last leaf of the largest tree (leaves - 2) is set before
 * the search: no table clears it (a tree's rightmost leaf lies in no true branch, and the bits past
 * a smaller tree's leaves are never cleared), and it keeps damaged tables from reading past a
 * tree's values. Returns -1, or the first row whose category code lies outside its table (nothing
 * is scored from that row on). */
#define SCORES(NAME, MASK, CTZ)                                                                         \
    int64_t NAME(int64_t rows, const serein_block *block, int64_t trees, int64_t leaves, int64_t n_tables, \
                 const serein_table *tables, const serein_input *inputs, const double *leaf_values,     \
                 int64_t n_scores, double *scores) {                                                    \
        MASK alive[trees]; /* per tree, the leaves its tests so far leave possible */                   \
        const MASK last = (MASK)1 << (leaves - 2);                                                      \
        for (int64_t row = 0; row < rows; row++) {                                                      \
            for (int64_t k = 0; k < trees; k++) alive[k] = (MASK)~(MASK)0;                              \
            for (int64_t t = 0; t < n_tables; t++) {                                                    \
                int64_t code = code_of(&tables[t], inputs, block, row);                                 \
                if (code < 0) return row;                                                               \
                const MASK *masks = (const MASK *)tables[t].masks + code * trees;                       \
                for (int64_t k = 0; k < trees; k++) alive[k] &= masks[k];                               \
            }                                                                                           \
            double *out = scores + row * n_scores;                                                      \
            if (n_scores == 1) { /* four running sums: the additions do not wait on each other */       \
                double sum[4] = {0.0, 0.0, 0.0, 0.0};                                                   \
                int64_t k = 0;                                                                          \
                for (; k + 4 <= trees; k += 4)                                                          \
                    for (int q = 0; q < 4; q++)                                                         \
                        sum[q] += leaf_values[(k + q) * leaves + CTZ(alive[k + q] | last) + 1];         \
                for (; k < trees; k++) sum[0] += leaf_values[k * leaves + CTZ(alive[k] | last) + 1];    \
                out[0] = (sum[0] + sum[1]) + (sum[2] + sum[3]);                                         \
                continue;                                                                               \
            }                                                                                           \
            for (int64_t s = 0; s < n_scores; s++) out[s] = 0.0;                                        \
            for (int64_t k = 0; k < trees; k++) {                                                       \
                const double *value = leaf_values + (k * leaves + CTZ(alive[k] | last) + 1) * n_scores; \
                for (int64_t s = 0; s < n_scores; s++) out[s] += value[s];                              \
            }                                                                                           \
        }                                                                                               \
        return -1;                                                                                      \
    }

SCORES(serein_tree_scores32, uint32_t, __builtin_ctz)
SCORES(serein_tree_scores64, uint64_t, __builtin_ctzll)
