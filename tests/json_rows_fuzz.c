/* Fuzzes serving's compiled body reader (src/serein/json_rows.c) under AddressSanitizer and
 * UndefinedBehaviorSanitizer: valid bodies, then every truncation of them and many random
 * mutations (bytes flipped, JSON's structural characters, digits, escapes, NUL and invalid UTF-8
 * inserted or overwritten), each in a buffer of exactly its size, so that any read past the body
 * stops the run. Every answer must be in range: a row count within the capacity, spans inside the
 * body, first-equal rows before their own; and the shipper's reader of record lines
 * (serein_record_rows) never writes past its output, declining when it is too small. Built and run
 * by tests/test_json_rows_fuzz.py.
 * Usage: json_rows_fuzz ITERATIONS SEED */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/serein/json_rows.c"

static const char *SEEDS[] = {
    "{\"instances\": [{\"age\": 41, \"city\": \"Oslo\", \"x\": -1.5e3}, {\"x\": null, \"city\": null, \"age\": 0}]}",
    "{\"instances\":[{\"age\":1,\"city\":\"a\",\"x\":2},{\"age\":1,\"city\":\"b\",\"x\":2},{\"age\":1,\"city\":\"a\",\"x\":2}]}",
    " { \"instances\" : [ { \"city\" : \"Zo\xc3\xab\" , \"x\" : 0.000123 , \"age\" : 123456789012345 } ] } ",
    "{\"instances\": [{\"age\": 1, \"age\": 2, \"city\": \"a\", \"x\": 3}]}",
    "{\"instances\": [{\"city\": \"Zo\\u00eb \\\"q\\\\\", \"age\": 2, \"x\": 3}, {\"city\": \"\\\\\", \"age\": 2, \"x\": 3}]}",
    "{\"request_id\":\"r\",\"inputs\":{\"age\":[41,-0.0],\"c\\\"ity\":[\"a,}\\\"\",null]},\"predictions\":[1,\"no\"],"
    "\"probabilities\":[[0.1,0.9],[0.5,0.5]],\"scores\":[0.9,0.5],\"shadow\":false}",
    "{\"inputs\":{\"x\":[[1,{\"a\":\"]\"}],true]},\"predictions\":[0,1],\"probabilities\":null}",
};
static const char INSERTS[] = "{}[],:\"\\0123456789eE+-. \n\tnulltrue\x00\xff\x80";
static const char *NAMES[] = {"age", "city", "x"};
static const int64_t NAME_SIZES[] = {3, 4, 1};
static const uint8_t TEXT[] = {0, 1, 0};

static uint64_t state;
static long record_reads;  /* record lines read whole: the fuzz reaches the reader's end */
static uint64_t next_random(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static int check(const unsigned char *data, int64_t size) {
    unsigned char *body = malloc(size ? (size_t)size : 1);  /* exactly the body: no slack to read into */
    memcpy(body, data, (size_t)size);
    for (int64_t capacity = 1; capacity <= 4; capacity++) {
        double numbers[2 * 4];
        int64_t starts[4], sizes[4], firsts[4], table[8], where[2] = {-7, -7};
        int64_t rows = serein_json_rows(body, size, "instances", 9, NAMES, NAME_SIZES, TEXT, 3, capacity, numbers,
                                        starts, sizes, firsts, table, where);
        if (rows > capacity || rows < -2 || rows == 0) return fprintf(stderr, "rows %lld\n", (long long)rows), 1;
        if (rows == -2 && (where[0] < 0 || where[0] >= capacity || where[1] < 0 || where[1] >= 3))
            return fprintf(stderr, "where %lld %lld\n", (long long)where[0], (long long)where[1]), 1;
        for (int64_t i = 0; i < rows; i++) {
            if (sizes[i] >= 0 && (starts[i] < 0 || starts[i] + sizes[i] > size)) return fprintf(stderr, "span\n"), 1;
            if (firsts[i] < -1 || firsts[i] > i || (sizes[i] < 0) != (firsts[i] == -1))
                return fprintf(stderr, "first\n"), 1;
        }
    }
    for (int64_t n_rows = 1; n_rows <= 3; n_rows++) {  /* the shipper's reader of record lines */
        for (int64_t n_columns = 1; n_columns <= 2; n_columns++) {
            int64_t scratch[2 * 2 * 4 + 4 * 3], offsets[3 * 3 + 1];
            int64_t out_size = n_columns == 1 ? size / 2 : 2 * size + 16;  /* too small, or not: decline, never overflow */
            unsigned char *out = malloc(out_size ? (size_t)out_size : 1);
            int64_t pieces = serein_record_rows(body, size, n_rows, n_columns, scratch, out, out_size, offsets);
            if (pieces != -1 && pieces != 2 * n_rows && pieces != 3 * n_rows)
                return fprintf(stderr, "pieces %lld\n", (long long)pieces), 1;
            record_reads += pieces > 0;
            for (int64_t k = 0; k < pieces; k++)
                if (offsets[k] < 0 || offsets[k] > offsets[k + 1] || offsets[k + 1] > out_size)
                    return fprintf(stderr, "offsets\n"), 1;
            free(out);
        }
    }
    free(body);
    return 0;
}

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 100000;
    state = argc > 2 ? strtoull(argv[2], NULL, 10) | 1 : 88172645463325252ULL;
    unsigned char buffer[512];
    for (size_t s = 0; s < sizeof SEEDS / sizeof *SEEDS; s++) {
        int64_t size = (int64_t)strlen(SEEDS[s]);
        for (int64_t cut = 0; cut <= size; cut++)
            if (check((const unsigned char *)SEEDS[s], cut)) return 1;
    }
    for (long k = 0; k < iterations; k++) {
        const char *seed = SEEDS[next_random() % (sizeof SEEDS / sizeof *SEEDS)];
        int64_t size = (int64_t)strlen(seed);
        memcpy(buffer, seed, (size_t)size);
        int edits = 1 + (int)(next_random() % 4);
        for (int e = 0; e < edits; e++) {
            int64_t at = size ? (int64_t)(next_random() % (uint64_t)size) : 0;
            unsigned char byte = (unsigned char)INSERTS[next_random() % (sizeof INSERTS - 1)];
            switch (next_random() % 4) {
                case 0: buffer[at] = byte; break;                                         /* overwrite */
                case 1: if (size < (int64_t)sizeof buffer) {                            /* insert */
                            memmove(buffer + at + 1, buffer + at, (size_t)(size - at));
                            buffer[at] = byte;
                            size++;
                        }
                        break;
                case 2: if (size) {                                                     /* delete */
                            memmove(buffer + at, buffer + at + 1, (size_t)(size - at - 1));
                            size--;
                        }
                        break;
                default: buffer[at] ^= (unsigned char)(1u << (next_random() % 8));     /* flip a bit */
            }
        }
        if (check(buffer, size)) return 1;
    }
    if (record_reads == 0) return fprintf(stderr, "no record line was read whole\n"), 1;
    printf("ok %ld\n", iterations);
    return 0;
}
