/*
 * content-filter, in C: a Switchyard plugin written from docs/ABI.md alone (no SDK).
 *
 * Each message's payload is text. One that contains a banned word (ASCII, any case) is rejected,
 * naming the word; any other is published to the configured `output` subject with the header
 * `filtered-by: content-filter`, and a request gets the same text back as its reply.
 *
 *   [plugins.content-filter.config]
 *   output = "content.clean"      # required
 *   banned = ["spam", "scam"]     # optional, default none
 *
 * Build (make builds it with the Zig toolchain it installs into ./tools):
 *   zig cc -target wasm32-wasi -mexec-model=reactor -O2 -Wl,-z,stack-size=65536 -o content_filter_c.wasm filter.c
 * The stack size matters: zig's default stack (16 MiB) is more than the plugin's `memory` cap, and
 * the host refuses a module whose initial memory does not fit it.
 *
 * Wire format (docs/ABI.md, "Wire types"): MessagePack maps with string keys; unknown keys are
 * skipped, missing optional ones defaulted. The reader below knows just enough MessagePack for
 * that; the writer writes the three shapes this plugin returns or publishes.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

__attribute__((import_module("switchyard"), import_name("publish")))
int32_t switchyard_publish(const void *ptr, int32_t len);
__attribute__((import_module("switchyard"), import_name("log")))
int32_t switchyard_log(int32_t level, const void *ptr, int32_t len);

enum { LOG_ERROR = 1, LOG_WARN = 2, LOG_INFO = 3 };
enum { MAX_BANNED = 64, MAX_DEPTH = 32 };

/* ---- reading MessagePack ---------------------------------------------------------------- */

typedef struct {
    const uint8_t *at, *end;
    int failed;
} reader;

typedef struct {
    const uint8_t *ptr;
    uint32_t len;
} slice;

static int take(reader *r, uint32_t n, const uint8_t **out) {
    if (r->failed || (uint32_t)(r->end - r->at) < n) {
        r->failed = 1;
        return 0;
    }
    *out = r->at;
    r->at += n;
    return 1;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* The next byte, or 0xc1 (never used in MessagePack) at the end. */
static uint8_t peek(reader *r) { return r->at < r->end ? *r->at : 0xc1; }

static uint32_t length(reader *r, int bytes) {
    const uint8_t *p;
    return take(r, bytes, &p) ? (uint32_t)be(p, bytes) : 0;
}

/* A map's entry count, or -1 when the next value is not a map. */
static int64_t read_map(reader *r) {
    uint8_t b = peek(r);
    if (b >= 0x80 && b <= 0x8f) return r->at++, b & 0x0f;
    if (b == 0xde) return r->at++, length(r, 2);
    if (b == 0xdf) return r->at++, length(r, 4);
    return -1;
}

static int64_t read_array(reader *r) {
    uint8_t b = peek(r);
    if (b >= 0x90 && b <= 0x9f) return r->at++, b & 0x0f;
    if (b == 0xdc) return r->at++, length(r, 2);
    if (b == 0xdd) return r->at++, length(r, 4);
    return -1;
}

/* A str, or a bin (accepted wherever bytes are read, as the ABI allows); 0 when neither. */
static int read_bytes(reader *r, slice *out) {
    uint8_t b = peek(r);
    uint32_t n;
    if (b >= 0xa0 && b <= 0xbf) r->at++, n = b & 0x1f;
    else if (b == 0xd9 || b == 0xc4) r->at++, n = length(r, 1);
    else if (b == 0xda || b == 0xc5) r->at++, n = length(r, 2);
    else if (b == 0xdb || b == 0xc6) r->at++, n = length(r, 4);
    else return 0;
    return take(r, n, &out->ptr) ? (out->len = n, 1) : 0;
}

static int is_nil(reader *r) { return peek(r) == 0xc0 ? (r->at++, 1) : 0; }

/* Skip one value of any type; nesting bounded as the host bounds it. */
static void skip(reader *r, int depth) {
    const uint8_t *p;
    slice s;
    int64_t n;
    uint8_t b = peek(r);
    if (depth > MAX_DEPTH) { r->failed = 1; return; }
    if (read_bytes(r, &s)) return;
    if ((n = read_map(r)) >= 0) { for (int64_t i = 0; i < 2 * n && !r->failed; i++) skip(r, depth + 1); return; }
    if ((n = read_array(r)) >= 0) { for (int64_t i = 0; i < n && !r->failed; i++) skip(r, depth + 1); return; }
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) { r->at++; return; }
    switch (b) {
    case 0xcc: case 0xd0: r->at++; take(r, 1, &p); return;
    case 0xcd: case 0xd1: r->at++; take(r, 2, &p); return;
    case 0xca: case 0xce: case 0xd2: r->at++; take(r, 4, &p); return;
    case 0xcb: case 0xcf: case 0xd3: r->at++; take(r, 8, &p); return;
    case 0xd4: r->at++; take(r, 2, &p); return;  /* fixext 1: type + data */
    case 0xd5: r->at++; take(r, 3, &p); return;
    case 0xd6: r->at++; take(r, 5, &p); return;
    case 0xd7: r->at++; take(r, 9, &p); return;
    case 0xd8: r->at++; take(r, 17, &p); return;
    case 0xc7: r->at++; n = length(r, 1); take(r, (uint32_t)n + 1, &p); return;
    case 0xc8: r->at++; n = length(r, 2); take(r, (uint32_t)n + 1, &p); return;
    case 0xc9: r->at++; n = length(r, 4); take(r, (uint32_t)n + 1, &p); return;
    default: r->failed = 1;
    }
}

static int key_is(slice key, const char *name) { return key.len == strlen(name) && memcmp(key.ptr, name, key.len) == 0; }

/* ---- writing MessagePack ---------------------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    uint32_t len, cap;
} writer;

static void put(writer *w, const void *bytes, uint32_t n) {
    if (w->len + n > w->cap) {
        uint32_t cap = (w->cap ? w->cap * 2 : 256);
        while (cap < w->len + n) cap *= 2;
        w->buf = realloc(w->buf, cap);
        w->cap = cap;
    }
    memcpy(w->buf + w->len, bytes, n);
    w->len += n;
}

static void put_byte(writer *w, uint8_t b) { put(w, &b, 1); }

static void put_head(writer *w, uint8_t small, uint8_t small_max, uint8_t b8, uint8_t b16, uint8_t b32, uint32_t n) {
    uint8_t h[5];
    if (n <= small_max) { put_byte(w, (uint8_t)(small | n)); return; }
    if (b8 && n <= 0xff) { h[0] = b8; h[1] = (uint8_t)n; put(w, h, 2); return; }
    if (n <= 0xffff) { h[0] = b16; h[1] = (uint8_t)(n >> 8); h[2] = (uint8_t)n; put(w, h, 3); return; }
    h[0] = b32; h[1] = (uint8_t)(n >> 24); h[2] = (uint8_t)(n >> 16); h[3] = (uint8_t)(n >> 8); h[4] = (uint8_t)n;
    put(w, h, 5);
}

static void put_str(writer *w, const void *s, uint32_t n) { put_head(w, 0xa0, 31, 0xd9, 0xda, 0xdb, n), put(w, s, n); }
static void put_cstr(writer *w, const char *s) { put_str(w, s, (uint32_t)strlen(s)); }
static void put_bin(writer *w, const void *s, uint32_t n) {
    uint8_t h[5] = {0xc6, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    if (n <= 0xff) h[3] = 0xc4, put(w, h + 3, 2);          /* a bin always has a length: no "fix" form */
    else if (n <= 0xffff) h[2] = 0xc5, put(w, h + 2, 3);
    else put(w, h, 5);
    put(w, s, n);
}
static void put_map(writer *w, uint32_t n) { put_head(w, 0x80, 15, 0, 0xde, 0xdf, n); }
static void put_array(writer *w, uint32_t n) { put_head(w, 0x90, 15, 0, 0xdc, 0xdd, n); }

/* ---- the plugin ------------------------------------------------------------------------- */

static char *output;                  /* the subject handled text goes to */
static char *banned[MAX_BANNED];      /* lowercase */
static int banned_count;

/* The last result handed to the host stays valid until the next export is called. */
static writer result;

static int64_t packed(const writer *w) { return ((int64_t)(uintptr_t)w->buf << 32) | (int64_t)w->len; }

static int64_t text_result(const char *text) {
    result.len = 0;
    put(&result, text, (uint32_t)strlen(text));
    return packed(&result);
}

static void log_line(int32_t level, const char *text) { switchyard_log(level, text, (int32_t)strlen(text)); }

static char *copy_lower(slice s) {
    char *out = malloc(s.len + 1);
    for (uint32_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[s.len] = 0;
    return out;
}

static char *copy(slice s) {
    char *out = malloc(s.len + 1);
    memcpy(out, s.ptr, s.len);
    out[s.len] = 0;
    return out;
}

__attribute__((export_name("switchyard_abi_version"))) int32_t abi_version(void) { return 1; }

__attribute__((export_name("switchyard_alloc"))) void *sy_alloc(int32_t len) { return malloc(len > 0 ? (size_t)len : 1); }

__attribute__((export_name("switchyard_free"))) void sy_free(void *ptr, int32_t len) {
    (void)len;
    free(ptr);
}

/* The config map: `output` (str, required) and `banned` (array of str, optional). */
__attribute__((export_name("switchyard_init"))) int64_t sy_init(uint8_t *ptr, int32_t len) {
    reader r = {ptr, ptr + len, 0};
    int64_t entries = read_map(&r);
    const char *problem = 0;
    if (entries < 0) problem = "the config is not a table";
    for (int64_t i = 0; i < entries && !problem && !r.failed; i++) {
        slice key, value;
        if (!read_bytes(&r, &key)) { problem = "a config key is not a string"; break; }
        if (key_is(key, "output")) {
            if (!read_bytes(&r, &value) || value.len == 0) problem = "`output` must be a subject (a non-empty string)";
            else output = copy(value);
        } else if (key_is(key, "banned")) {
            int64_t n = read_array(&r);
            if (n < 0) { problem = "`banned` must be an array of words"; break; }
            for (int64_t j = 0; j < n; j++) {
                if (!read_bytes(&r, &value) || value.len == 0) { problem = "`banned` must hold non-empty strings"; break; }
                if (banned_count == MAX_BANNED) { problem = "`banned` holds more than 64 words"; break; }
                banned[banned_count++] = copy_lower(value);
            }
        } else {
            problem = "unknown key (expected `output` and `banned`)";
        }
    }
    free(ptr);
    if (!problem && r.failed) problem = "the config does not decode";
    if (!problem && !output) problem = "missing `output` (the subject to publish to)";
    return problem ? text_result(problem) : 0;
}

/* The first banned word `text` contains, any case, or NULL. */
static const char *banned_word(slice text) {
    for (int b = 0; b < banned_count; b++) {
        size_t n = strlen(banned[b]);
        for (uint32_t i = 0; n <= text.len && i + n <= text.len; i++) {
            size_t k = 0;
            while (k < n) {
                uint8_t c = text.ptr[i + k];
                if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (uint8_t)banned[b][k]) break;
                k++;
            }
            if (k == n) return banned[b];
        }
    }
    return 0;
}

static int64_t reject(const char *reason) {
    result.len = 0;
    put_map(&result, 2);
    put_cstr(&result, "kind"), put_cstr(&result, "reject");
    put_cstr(&result, "reason"), put_cstr(&result, reason);
    return packed(&result);
}

static int64_t retry(const char *reason) {
    result.len = 0;
    put_map(&result, 2);
    put_cstr(&result, "kind"), put_cstr(&result, "retry");
    put_cstr(&result, "reason"), put_cstr(&result, reason);
    return packed(&result);
}

/* The Message map: `subject`, `reply` (str or nil), `payload` (bin); the rest is skipped. */
__attribute__((export_name("switchyard_handle"))) int64_t sy_handle(uint8_t *ptr, int32_t len) {
    reader r = {ptr, ptr + len, 0};
    slice subject = {0, 0}, payload = {0, 0}, reply = {0, 0};
    int64_t entries = read_map(&r);
    for (int64_t i = 0; i < entries && !r.failed; i++) {
        slice key;
        if (!read_bytes(&r, &key)) { r.failed = 1; break; }
        if (key_is(key, "subject")) { if (!read_bytes(&r, &subject)) r.failed = 1; }
        else if (key_is(key, "payload")) { if (!read_bytes(&r, &payload)) r.failed = 1; }
        else if (key_is(key, "reply")) { if (!is_nil(&r) && !read_bytes(&r, &reply)) r.failed = 1; }
        else skip(&r, 1);
    }
    int64_t out;
    if (entries < 0 || r.failed || !subject.ptr) {
        out = reject("message did not decode");
    } else {
        const char *word = banned_word(payload);
        if (word) {
            static char reason[160];
            strcpy(reason, "contains the banned word `");
            strncat(reason, word, 100);
            strcat(reason, "`");
            out = reject(reason);
        } else {
            writer publish = {0, 0, 0};
            put_map(&publish, 3);
            put_cstr(&publish, "subject"), put_cstr(&publish, output);
            put_cstr(&publish, "headers"), put_array(&publish, 1), put_array(&publish, 2);
            put_cstr(&publish, "filtered-by"), put_cstr(&publish, "content-filter");
            put_cstr(&publish, "payload"), put_bin(&publish, payload.ptr, payload.len);
            int32_t status = switchyard_publish(publish.buf, (int32_t)publish.len);
            free(publish.buf);
            if (status != 0) {
                char why[] = "the host refused the publish: status -0";
                why[sizeof why - 2] = (char)('0' - status % 10); /* the codes are -1 to -9 */
                log_line(LOG_WARN, why);
                out = retry("the host refused the publish");
            } else {
                log_line(LOG_INFO, "passed the filter");
                result.len = 0;
                if (reply.ptr) {
                    put_map(&result, 2);
                    put_cstr(&result, "kind"), put_cstr(&result, "reply");
                    put_cstr(&result, "payload"), put_bin(&result, payload.ptr, payload.len);
                } else {
                    put_map(&result, 1);
                    put_cstr(&result, "kind"), put_cstr(&result, "ack");
                }
                out = packed(&result);
            }
        }
    }
    free(ptr); /* the message was ours; nothing above points into it any more */
    return out;
}
