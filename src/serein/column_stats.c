/* One numeric column's summary for drift in compiled code: how many values are finite, their
 * mean and standard deviation, the order statistics a set of quantiles needs, and how many values
 * lie at or below each bin edge.
 *
 * Built into libcolumnstats.so when serein is installed (hatch_build.py) and called through ctypes
 * (serein/column_stats.py), which releases the GIL for the whole call. numpy's path
 * (serein.monitor.profile._select) does the same in about fifteen passes over the column; here it
 * takes three: (1) the count, extremes and sum of the finite values; (2) a histogram over
 * equal-width buckets between the extremes, and the squared deviations; (3) the values of the few
 * buckets that hold a wanted rank or an edge, gathered bucket by bucket. Bucket order follows value
 * order (subtracting the minimum, scaling and truncating are monotone in floating point), so the
 * cumulative counts say which bucket holds each rank and only those buckets are ordered: a bucket
 * of one distinct value as it is, a small one by insertion, a large one by the same method on its
 * own extremes (each step splits it: its minimum and maximum land in different buckets). The
 * results are exact order statistics and counts, the same as sorting gives.
 *
 * Plain C99 without machine-specific flags, so the library runs on any CPU of the platform.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SEREIN_COLUMN_STATS_ABI 1
#define MAX_BUCKETS 65536  /* a 512 kB count table */
#define SMALL 32           /* a bucket this small is ordered by insertion */

/* Outcomes: the summary is written; the caller must compute it another way (the finite values'
 * range overflows, or a bucket's is too narrow to split); memory ran out; an argument is wrong. */
#define DONE 0
#define NOT_HANDLED 1
#define NO_MEMORY -1
#define BAD_ARGUMENT -2

int64_t serein_column_stats_abi(void) { return SEREIN_COLUMN_STATS_ABI; }

static inline int64_t bucket_of(double v, double low, double scale, int64_t n_buckets) {
    int64_t b = (int64_t)((v - low) * scale);
    return b < n_buckets ? b : n_buckets - 1;
}

static void insertion_sort(double *v, int64_t n) {
    for (int64_t i = 1; i < n; i++) {
        double x = v[i];
        int64_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/* The values of v[0..n) (finite, n > 0) at the ascending ranks[0..k) written to out[0..k), and
 * for each of the edges[0..e) inside [low, high) how many values lie at or below it added to
 * below[]; low and high are v's extremes. v is not changed. */
static int select_ranks(const double *v, int64_t n, int finite_only, double low, double high,
                        const int64_t *ranks, int64_t k, const double *edges, int64_t e, int64_t *below,
                        double *out);

/* Order the values of one gathered bucket (slice s of m values) enough to read its ranks. */
static int bucket_ranks(double *s, int64_t m, const int64_t *ranks, int64_t k, int64_t first, double *out) {
    if (k == 0)
        return DONE;
    if (m <= SMALL) {
        insertion_sort(s, m);
        for (int64_t i = 0; i < k; i++)
            out[i] = s[ranks[i] - first];
        return DONE;
    }
    double lo = s[0], hi = s[0];
    for (int64_t i = 1; i < m; i++) {
        lo = s[i] < lo ? s[i] : lo;
        hi = s[i] > hi ? s[i] : hi;
    }
    if (lo == hi) {  /* ties: one distinct value */
        for (int64_t i = 0; i < k; i++)
            out[i] = lo;
        return DONE;
    }
    int64_t *local = malloc((size_t)k * sizeof *local);
    if (!local)
        return NO_MEMORY;
    for (int64_t i = 0; i < k; i++)
        local[i] = ranks[i] - first;
    int status = select_ranks(s, m, 1, lo, hi, local, k, NULL, 0, NULL, out);
    free(local);
    return status;
}

static int select_ranks(const double *v, int64_t n, int finite_only, double low, double high,
                        const int64_t *ranks, int64_t k, const double *edges, int64_t e, int64_t *below,
                        double *out) {
    int64_t n_buckets = 2;
    while (n_buckets < n && n_buckets < MAX_BUCKETS)
        n_buckets <<= 1;
    double span = high - low, scale = (double)n_buckets / span;
    if (!(isfinite(span) && span > 0 && isfinite(scale) && scale > 0))
        return NOT_HANDLED;
    int status = NO_MEMORY;
    int64_t *counts = calloc((size_t)n_buckets, sizeof *counts);
    int64_t *start = malloc((size_t)n_buckets * sizeof *start);
    unsigned char *wanted = calloc((size_t)n_buckets, 1);
    int64_t *edge_bucket = malloc((size_t)(e ? e : 1) * sizeof *edge_bucket);
    double *gathered = NULL;
    if (!counts || !start || !wanted || !edge_bucket)
        goto done;
    for (int64_t i = 0; i < n; i++) {
        double x = v[i];
        if (finite_only || isfinite(x))
            counts[bucket_of(x, low, scale, n_buckets)]++;
    }
    /* the bucket of each rank (ranks ascend, so one walk over the buckets finds them all) */
    int64_t seen = 0, b = 0;
    for (int64_t i = 0; i < k; i++) {
        while (seen + counts[b] <= ranks[i]) {
            seen += counts[b];
            b++;
        }
        wanted[b] = 1;
    }
    for (int64_t j = 0; j < e; j++) {
        edge_bucket[j] = -1;
        if (edges[j] >= low && edges[j] < high) {
            edge_bucket[j] = bucket_of(edges[j], low, scale, n_buckets);
            wanted[edge_bucket[j]] = 2 | wanted[edge_bucket[j]];
        }
    }
    /* each wanted bucket's slot in the gathered values; `first`: the rank of its smallest value */
    int64_t total = 0;
    for (int64_t c = 0; c < n_buckets; c++) {
        start[c] = total;
        total += wanted[c] ? counts[c] : 0;
    }
    gathered = malloc((size_t)(total ? total : 1) * sizeof *gathered);
    if (!gathered)
        goto done;
    {
        int64_t *fill = malloc((size_t)n_buckets * sizeof *fill);
        if (!fill)
            goto done;
        memcpy(fill, start, (size_t)n_buckets * sizeof *fill);
        for (int64_t i = 0; i < n; i++) {
            double x = v[i];
            if (finite_only || isfinite(x)) {
                int64_t c = bucket_of(x, low, scale, n_buckets);
                if (wanted[c])
                    gathered[fill[c]++] = x;
            }
        }
        free(fill);
    }
    /* edges: every value of an earlier bucket lies at or below, every value of a later one above */
    int64_t before = 0;
    int64_t r = 0;
    status = DONE;
    for (int64_t c = 0; c < n_buckets && status == DONE; c++) {
        if (wanted[c]) {
            double *s = gathered + start[c];
            for (int64_t j = 0; j < e; j++) {
                if (edge_bucket[j] != c)
                    continue;
                int64_t at = 0;
                for (int64_t i = 0; i < counts[c]; i++)
                    at += s[i] <= edges[j];
                below[j] += before + at;
            }
            int64_t r_end = r;
            while (r_end < k && ranks[r_end] < before + counts[c])
                r_end++;
            status = bucket_ranks(s, counts[c], ranks + r, r_end - r, before, out + r);
            r = r_end;
        }
        before += counts[c];
    }
done:
    free(counts);
    free(start);
    free(wanted);
    free(edge_bucket);
    free(gathered);
    return status;
}

/* The summary of x[0..n) (NaN and infinities are not values): stats[0..3) = count of finite
 * values, mean and standard deviation (ddof 0); for each of the levels[0..q) (in
 * [0, 1]) the values at ranks floor(level * (count - 1)) and the next one (capped), in lo[] and
 * hi[]; for each of edges[0..e) how many finite values lie at or below it, in below[]. Returns
 * DONE, or NOT_HANDLED when there are no finite values or their range is too wide or too narrow
 * to bucket (the caller sorts instead), NO_MEMORY or BAD_ARGUMENT. */
int64_t serein_numeric_summary(const double *x, int64_t n, const double *levels, int64_t q,
                               const double *edges, int64_t e, double *stats, double *lo, double *hi,
                               int64_t *below) {
    if (n < 0 || q < 0 || e < 0)
        return BAD_ARGUMENT;
    int64_t count = 0;
    double low = INFINITY, high = -INFINITY, sum = 0.0, compensation = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v))
            continue;
        count++;
        low = v < low ? v : low;
        high = v > high ? v : high;
        double t = sum + v;  /* Neumaier's compensated sum */
        compensation += fabs(sum) >= fabs(v) ? (sum - t) + v : (v - t) + sum;
        sum = t;
    }
    if (count == 0)
        return NOT_HANDLED;
    double mean = (sum + compensation) / (double)count, squares = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            squares += (x[i] - mean) * (x[i] - mean);
    stats[0] = (double)count;
    stats[1] = mean;
    stats[2] = sqrt(squares / (double)count);
    /* the ranks, ascending and distinct, and where each level's pair is among them */
    int64_t *ranks = calloc((size_t)(2 * q + 1), sizeof *ranks);
    double *found = malloc((size_t)(2 * q + 1) * sizeof *found);
    if (!ranks || !found) {
        free(ranks);
        free(found);
        return NO_MEMORY;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < q; i++) {
        if (!(levels[i] >= 0.0 && levels[i] <= 1.0)) {
            free(ranks);
            free(found);
            return BAD_ARGUMENT;
        }
        int64_t r = (int64_t)floor(levels[i] * (double)(count - 1));
        int64_t pair[2] = {r, r + 1 < count ? r + 1 : count - 1};
        for (int side = 0; side < 2; side++)
            ranks[k++] = pair[side];
    }
    /* sort and deduplicate (q is small) */
    for (int64_t i = 1; i < k; i++) {
        int64_t r = ranks[i], j = i;
        for (; j > 0 && ranks[j - 1] > r; j--)
            ranks[j] = ranks[j - 1];
        ranks[j] = r;
    }
    int64_t distinct = 0;
    for (int64_t i = 0; i < k; i++)
        if (distinct == 0 || ranks[distinct - 1] != ranks[i])
            ranks[distinct++] = ranks[i];
    for (int64_t j = 0; j < e; j++)
        below[j] = edges[j] < low ? 0 : (edges[j] >= low && edges[j] < high ? 0 : count);
    int status;
    if (low == high) {
        for (int64_t i = 0; i < distinct; i++)
            found[i] = low;
        status = DONE;
    } else {
        status = select_ranks(x, n, 0, low, high, ranks, distinct, edges, e, below, found);
    }
    if (status == DONE) {
        for (int64_t i = 0; i < q; i++) {
            int64_t r = (int64_t)floor(levels[i] * (double)(count - 1));
            int64_t r1 = r + 1 < count ? r + 1 : count - 1;
            int64_t a = 0;
            while (ranks[a] != r)
                a++;
            int64_t z = a;
            while (ranks[z] != r1)
                z++;
            lo[i] = found[a];
            hi[i] = found[z];
        }
    }
    free(ranks);
    free(found);
    return status;
}
