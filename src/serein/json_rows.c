/* Serving's fast reader of a predict body, {"instances": [{...}, ...]} (or another key: MLflow's
 * "dataframe_records"), straight into columns; and the prediction-log shipper's reader of a
 * request record's line, cut into the store's rows (serein_record_rows, at the end).
 *
 * serein.serve.json_rows calls it through ctypes (which releases the GIL). It reads the common
 * body (one object per row holding exactly the contract's fields once each, named without
 * escapes, numbers in numeric fields, strings or null elsewhere) into a float64 block (NaN for a
 * null) and, for each text field, the byte span of every value, with the row of its first equal
 * value, so that Python decodes each distinct text once (a span holding a backslash is unescaped
 * there: Python's json.dumps escapes every non-ASCII character by default). Anything else is not
 * judged here: the body is handed back (-1) to the general path (orjson, then the validator),
 * which names what is wrong. Only a field given twice in a row is refused here (-2): orjson keeps
 * the last, silently.
 *
 * It never reads outside [body, body + size): every step checks the end first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define SEREIN_JSON_ROWS_ABI 3
#define NOT_HANDLED (-1)
#define GIVEN_TWICE (-2)
#define MAX_NUMBER_CHARS 40
#define MAX_COLUMNS 4096

int64_t serein_json_rows_abi(void) { return SEREIN_JSON_ROWS_ABI; }

typedef struct {
    const unsigned char *at, *end;
} cursor;

static void skip_space(cursor *c) {
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\n' || *c->at == '\r' || *c->at == '\t')) c->at++;
}

/* The next non-space byte is ch: step past it. */
static int expect(cursor *c, unsigned char ch) {
    skip_space(c);
    if (c->at < c->end && *c->at == ch) {
        c->at++;
        return 1;
    }
    return 0;
}

/* A string without control characters: its contents' span (the quotes excluded). With escapes 0,
 * one holding a backslash is not judged; else a backslash and the byte after it are stepped over
 * (whether the escape is well formed is for the code that unescapes the span). */
static int string_span(cursor *c, const unsigned char **start, int64_t *length, int escapes) {
    if (c->at >= c->end || *c->at != '"') return 0;
    const unsigned char *p = ++c->at;
    while (p < c->end && *p != '"') {
        if (*p < 0x20) return 0;
        if (*p == '\\') {
            if (!escapes || c->end - p < 2) return 0;
            p++;
        }
        p++;
    }
    if (p >= c->end) return 0;
    *start = c->at;
    *length = p - c->at;
    c->at = p + 1;
    return 1;
}

static int is_digit(const unsigned char *p, const unsigned char *end) { return p < end && *p >= '0' && *p <= '9'; }

static const double POWERS_OF_TEN[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A JSON number (RFC 8259's grammar exactly), as the nearest double. Most take Clinger's fast
 * path: at most 19 digits, whose value m is at most 2^53, times or divided by 10^k, k <= 22 (both
 * exact doubles, so the one rounded operation gives the nearest double); the rest go to strtod
 * (about 100 ns each). An integer of more than 15 digits is not handled: float64 may not hold it,
 * and the validator decides what it means. */
static int number(cursor *c, double *out) {
    const unsigned char *p = c->at, *end = c->end;
    int negative = 0, fraction_or_exponent = 0;
    uint64_t mantissa = 0;
    int64_t digits = 0, scale = 0, exponent = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    const unsigned char *integer = p;
    if (!is_digit(p, end)) return 0;
    if (*p == '0') p++;
    else while (is_digit(p, end)) {
        if (digits < 19) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        digits++;
        p++;
    }
    int64_t integer_digits = p - integer;
    if (p < end && *p == '.') {
        p++;
        if (!is_digit(p, end)) return 0;
        while (is_digit(p, end)) {
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                scale--;
                if (mantissa) digits++;
            } else {
                digits++;
            }
            p++;
        }
        fraction_or_exponent = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int exponent_negative = 0;
        if (p < end && (*p == '+' || *p == '-')) exponent_negative = *p++ == '-';
        if (!is_digit(p, end)) return 0;
        while (is_digit(p, end)) {
            if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
            p++;
        }
        if (exponent_negative) exponent = -exponent;
        fraction_or_exponent = 1;
    }
    int64_t n = p - c->at;
    if (!fraction_or_exponent && integer_digits > 15) return 0;
    int64_t k = scale + exponent;
    double value;
    if (digits <= 19 && mantissa <= (1ULL << 53) && k >= -22 && k <= 22) {
        value = (double)mantissa;
        value = k >= 0 ? value * POWERS_OF_TEN[k] : value / POWERS_OF_TEN[-k];
        if (negative && (mantissa || fraction_or_exponent)) value = -value;  /* -0 is the integer 0 */
    } else {
        if (n >= MAX_NUMBER_CHARS) return 0;
        char text[MAX_NUMBER_CHARS];
        memcpy(text, c->at, (size_t)n);
        text[n] = '\0';
        char *stop;
        value = strtod(text, &stop);
        if (stop != text + n) return 0;
    }
    if (!isfinite(value)) return 0;
    *out = value;
    c->at = p;
    return 1;
}

static int literal(cursor *c, const char *word, int64_t n) {
    if (c->end - c->at >= n && memcmp(c->at, word, (size_t)n) == 0) {
        c->at += n;
        return 1;
    }
    return 0;
}

static uint64_t text_hash(const unsigned char *p, int64_t n) {
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
    for (int64_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* Reads body[0, size) as {KEY: [row, ...]}, KEY given by key/key_size ("instances").
 *
 * names/name_sizes: the contract's fields (UTF-8); text[k]: field k holds text, else a number;
 * numbers[slot * capacity + row]: the k-th number field's values (slot: its rank among number
 * fields), NaN for null; starts/sizes[slot * capacity + row]: the k-th text field's spans (offset
 * in the body and length, length -1 for null); firsts[slot * capacity + row]: the row of the
 * first value equal to it (-1 for null). table: 2 * capacity int64 of scratch space.
 * Returns the number of rows (at least 1), NOT_HANDLED, or GIVEN_TWICE with where[0] the row and
 * where[1] the field. More than capacity rows is NOT_HANDLED (the caller counts before). */
int64_t serein_json_rows(const unsigned char *body, int64_t size, const char *key_name, int64_t key_name_size,
                         const char *const *names,
                         const int64_t *name_sizes, const uint8_t *text, int64_t n_fields, int64_t capacity,
                         double *numbers, int64_t *starts, int64_t *sizes, int64_t *firsts, int64_t *table,
                         int64_t *where) {
    if (n_fields < 1 || n_fields > MAX_COLUMNS || capacity < 1) return NOT_HANDLED;
    int64_t slot[MAX_COLUMNS];
    int64_t n_numbers = 0, n_texts = 0;
    for (int64_t k = 0; k < n_fields; k++) slot[k] = text[k] ? n_texts++ : n_numbers++;
    uint8_t seen[MAX_COLUMNS];
    cursor c = {body, body + size};
    const unsigned char *key;
    int64_t key_size;
    if (!expect(&c, '{')) return NOT_HANDLED;
    skip_space(&c);
    if (!string_span(&c, &key, &key_size, 0) || key_size != key_name_size || memcmp(key, key_name, (size_t)key_size) != 0)
        return NOT_HANDLED;
    if (!expect(&c, ':') || !expect(&c, '[')) return NOT_HANDLED;
    int64_t rows = 0;
    do {
        if (rows == capacity || !expect(&c, '{')) return NOT_HANDLED;
        memset(seen, 0, (size_t)n_fields);
        int64_t found = 0, k = n_fields - 1;
        do {
            skip_space(&c);
            if (!string_span(&c, &key, &key_size, 0)) return NOT_HANDLED;
            /* fields come in the contract's order in most bodies: try the one after the last first */
            int64_t tries = 0;
            do {
                k = k + 1 == n_fields ? 0 : k + 1;
            } while (++tries <= n_fields && (name_sizes[k] != key_size || memcmp(names[k], key, (size_t)key_size) != 0));
            if (tries > n_fields) return NOT_HANDLED;  /* a field the contract does not have */
            if (seen[k]) {
                where[0] = rows;
                where[1] = k;
                return GIVEN_TWICE;
            }
            seen[k] = 1;
            found++;
            if (!expect(&c, ':')) return NOT_HANDLED;
            skip_space(&c);
            int64_t at = slot[k] * capacity + rows;
            if (literal(&c, "null", 4)) {
                if (text[k]) sizes[at] = -1;
                else numbers[at] = NAN;
            } else if (text[k]) {
                const unsigned char *value;
                if (!string_span(&c, &value, &sizes[at], 1)) return NOT_HANDLED;
                starts[at] = value - body;
            } else if (!number(&c, &numbers[at])) {
                return NOT_HANDLED;
            }
        } while (expect(&c, ','));
        if (!expect(&c, '}') || found != n_fields) return NOT_HANDLED;
        rows++;
    } while (expect(&c, ','));
    if (!expect(&c, ']') || !expect(&c, '}')) return NOT_HANDLED;
    skip_space(&c);
    if (c.at != c.end) return NOT_HANDLED;
    /* each text value's first equal value: open addressing over a table of 2 * capacity rows */
    int64_t buckets = 2 * capacity;
    for (int64_t s = 0; s < n_texts; s++) {
        int64_t *first = firsts + s * capacity;
        const int64_t *start = starts + s * capacity, *length = sizes + s * capacity;
        for (int64_t b = 0; b < buckets; b++) table[b] = -1;
        for (int64_t i = 0; i < rows; i++) {
            if (length[i] < 0) {
                first[i] = -1;
                continue;
            }
            uint64_t b = text_hash(body + start[i], length[i]) % (uint64_t)buckets;
            while (table[b] >= 0 && (length[table[b]] != length[i] ||
                                     memcmp(body + start[table[b]], body + start[i], (size_t)length[i]) != 0))
                b = b + 1 == (uint64_t)buckets ? 0 : b + 1;
            if (table[b] < 0) table[b] = i;
            first[i] = table[b];
        }
    }
    return rows;
}

/* ---- The prediction log's shipper: a request record's columns expanded into row objects ---- */

#define MAX_DEPTH 64

/* The bytes that end a number or literal: a delimiter or white space. */
static const unsigned char ENDS_SCALAR[256] = {[','] = 1, [']'] = 1, ['}'] = 1, [' '] = 1, ['\n'] = 1, ['\r'] = 1,
                                               ['\t'] = 1};

/* Steps over one JSON value, which the caller knows to be well formed (orjson read it first): a
 * string (escapes stepped over), an array or object (strings inside stepped over, brackets
 * counted to MAX_DEPTH), or a number or literal (up to the next delimiter). 0 when the body ends
 * first: whatever the bytes, nothing outside [body, end) is read. */
static int skip_value(cursor *c) {
    const unsigned char *s;
    int64_t n;
    if (c->at >= c->end) return 0;
    if (*c->at == '"') return string_span(c, &s, &n, 1);
    if (*c->at == '[' || *c->at == '{') {
        int64_t depth = 0;
        while (c->at < c->end) {
            unsigned char ch = *c->at;
            if (ch == '"') {
                if (!string_span(c, &s, &n, 1)) return 0;
                continue;
            }
            c->at++;
            if (ch == '[' || ch == '{') {
                if (++depth > MAX_DEPTH) return 0;
            } else if (ch == ']' || ch == '}') {
                if (--depth == 0) return 1;
            }
        }
        return 0;
    }
    const unsigned char *start = c->at;
    while (c->at < c->end && !ENDS_SCALAR[*c->at]) c->at++;
    return c->at > start;
}

/* The next element of an array whose cursor is at an element: its span, and the cursor moved past
 * the delimiter after it, which must be ',' unless last (then ']'). */
static int next_element(cursor *c, int last, int64_t *start, int64_t *end, const unsigned char *base) {
    skip_space(c);
    *start = c->at - base;
    if (!skip_value(c)) return 0;
    *end = c->at - base;
    return expect(c, last ? ']' : ',');
}

/* The spans of the n elements of the array at the cursor ('[' next): spans[2i], spans[2i + 1]. */
static int element_spans(cursor *c, int64_t n, int64_t *spans, const unsigned char *base) {
    if (!expect(c, '[')) return 0;
    for (int64_t i = 0; i < n; i++)
        if (!next_element(c, i == n - 1, &spans[2 * i], &spans[2 * i + 1], base)) return 0;
    return 1;
}

/* Appends line[start, end) to out[*written, out_size): 0 when it does not fit. */
static int append(unsigned char *out, int64_t out_size, int64_t *written, const unsigned char *line, int64_t start,
                  int64_t end) {
    if (end - start > out_size - *written) return 0;
    memcpy(out + *written, line + start, (size_t)(end - start));
    *written += end - start;
    return 1;
}

/* Reads a prediction-log record line (predlog_shipper.record_line, without its newline, which
 * orjson has read already): {..., "inputs": {NAME: [value per row], ...}, "predictions": [...],
 * "probabilities": [...] or null, ...} with n_rows rows and n_columns inputs, and writes into
 * out[0, out_size), one after another: each row's inputs as one JSON object ({NAME:value,...},
 * the names' and values' bytes as the line holds them: what orjson.dumps makes of the row read
 * back), then each prediction, then each row's probabilities (unless null), as the line holds
 * them. Piece k is out[offsets[k], offsets[k + 1]). scratch: 2 * n_columns * (n_rows + 1) + 4 * n_rows
 * int64 (each name's span, each column's values' spans: the line is read once, then the
 * predictions' and probabilities' spans). Returns the number
 * of pieces (2 or 3 times n_rows), or NOT_HANDLED when the line is not such a record (an earlier
 * serein's) or out is too small: the caller converts it in Python. */
int64_t serein_record_rows(const unsigned char *line, int64_t size, int64_t n_rows, int64_t n_columns,
                           int64_t *scratch, unsigned char *out, int64_t out_size, int64_t *offsets) {
    if (n_rows < 1 || n_columns < 1) return NOT_HANDLED;
    cursor c = {line, line + size};
    const unsigned char *key;
    int64_t key_size, found = 0, pieces = 2 * n_rows;
    /* names[2j], names[2j + 1]: column j's name (quotes included); values: column j's values' spans
     * from 2 * j * n_rows; then the predictions' spans, then the probabilities' */
    int64_t *names = scratch, *values = scratch + 2 * n_columns, *labels = values + 2 * n_columns * n_rows,
            *probabilities = labels + 2 * n_rows;
    if (!expect(&c, '{')) return NOT_HANDLED;
    do {
        skip_space(&c);
        if (!string_span(&c, &key, &key_size, 1) || !expect(&c, ':')) return NOT_HANDLED;
        skip_space(&c);
        if (key_size == 6 && memcmp(key, "inputs", 6) == 0) {
            if (!expect(&c, '{')) return NOT_HANDLED;
            for (int64_t j = 0; j < n_columns; j++) {
                skip_space(&c);
                names[2 * j] = c.at - line;
                if (!string_span(&c, &key, &key_size, 1)) return NOT_HANDLED;
                names[2 * j + 1] = key_size + 2;
                if (!expect(&c, ':') || !element_spans(&c, n_rows, values + 2 * j * n_rows, line) ||
                    !expect(&c, j == n_columns - 1 ? '}' : ','))
                    return NOT_HANDLED;
            }
            found |= 1;
        } else if (key_size == 11 && memcmp(key, "predictions", 11) == 0) {
            if (!element_spans(&c, n_rows, labels, line)) return NOT_HANDLED;
            found |= 2;
        } else if (key_size == 13 && memcmp(key, "probabilities", 13) == 0) {
            if (!literal(&c, "null", 4)) {
                if (!element_spans(&c, n_rows, probabilities, line)) return NOT_HANDLED;
                pieces = 3 * n_rows;
            }
        } else if (!skip_value(&c)) {
            return NOT_HANDLED;
        }
    } while (expect(&c, ','));
    if (!expect(&c, '}') || found != 3) return NOT_HANDLED;
    int64_t written = 0;
    for (int64_t i = 0; i < n_rows; i++) {
        offsets[i] = written;
        for (int64_t j = 0; j < n_columns; j++) {
            int64_t *value = values + 2 * (j * n_rows + i);
            if (out_size - written < 3) return NOT_HANDLED;
            out[written++] = j == 0 ? '{' : ',';
            if (!append(out, out_size, &written, line, names[2 * j], names[2 * j] + names[2 * j + 1]))
                return NOT_HANDLED;
            out[written++] = ':';
            if (!append(out, out_size, &written, line, value[0], value[1])) return NOT_HANDLED;
        }
        if (written >= out_size) return NOT_HANDLED;
        out[written++] = '}';
    }
    for (int64_t k = n_rows; k < pieces; k++) {  /* the predictions, then the probabilities */
        int64_t start = labels[2 * (k - n_rows)], end = labels[2 * (k - n_rows) + 1];
        offsets[k] = written;
        if (!append(out, out_size, &written, line, start, end)) return NOT_HANDLED;
    }
    offsets[pieces] = written;
    return pieces;
}
