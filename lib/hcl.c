/*
 * HCL1 parser (the subset Vault reads for server configs and ACL policies).
 *
 * The input is first checked in one pass for NUL bytes and invalid UTF-8, so the lexer only
 * ever sees well-formed text. A hand-written lexer then produces one token of lookahead
 * (`cur`); the decoded text of a string or heredoc token lives in the parser's scratch buffer
 * until the parser copies it, so tokens own nothing and error paths only free tree nodes.
 * The recursive-descent parser attaches every node to its parent as soon as it is complete,
 * so freeing the root on error frees all of it. Nesting (lists, objects, block labels) is
 * capped at HCL_MAX_DEPTH, which bounds the recursion of both the parser and cf_hcl_free.
 *
 * Failure modes: malformed text (CF_EMALFORMED with "FILE:LINE: ..."), out of memory
 * (CF_ENOMEM). Config files are small and parsed once at startup or policy write.
 */
#include "lib/hcl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/mem.h"

#define HCL_MAX_DEPTH 64
#define HCL_MAX_NUMBER 64 /* longest numeric literal, in bytes */

enum tok_kind {
    T_EOF,
    T_IDENT,
    T_STRING,
    T_HEREDOC,
    T_NUMBER,
    T_LBRACE,
    T_RBRACE,
    T_LBRACK,
    T_RBRACK,
    T_EQUAL,
    T_COMMA,
};

struct token
{
    enum tok_kind kind;
    int line;          /* line the token starts on */
    const char *start; /* borrowed: raw source text of IDENT and NUMBER */
    size_t len;
};

struct parser
{
    const char *text; /* borrowed */
    size_t len;
    size_t pos;
    int line; /* line of text[pos] */
    const char *filename;
    char *errmsg;
    struct token cur;
    struct cf_buf sbuf; /* decoded value of cur when STRING or HEREDOC */
};

static int fail(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, int line, const char *fmt, ...)
{
    char what[CF_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    cf_errmsg_printf(p->errmsg, "%s:%d: %s", p->filename, line, what);
    return CF_EMALFORMED;
}

static int oom(struct parser *p)
{
    cf_errmsg_printf(p->errmsg, "%s: out of memory", p->filename);
    return CF_ENOMEM;
}

static bool is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_char(int c)
{
    return is_ident_start(c) || is_digit(c) || c == '-' || c == '.';
}

static int peek_at(const struct parser *p, size_t off)
{
    if (p->pos + off >= p->len) {
        return -1;
    }
    return (unsigned char)p->text[p->pos + off];
}

/* Rejects NUL bytes and anything that is not well-formed UTF-8 (no overlongs, surrogates or
 * code points above U+10FFFF). */
static int check_encoding(struct parser *p)
{
    const unsigned char *s = (const unsigned char *)p->text;
    int line = 1;
    size_t i = 0;
    while (i < p->len) {
        unsigned c = s[i];
        if (c == 0) {
            return fail(p, line, "NUL byte in input");
        }
        if (c < 0x80) {
            if (c == '\n') {
                line++;
            }
            i++;
            continue;
        }
        size_t n;
        unsigned min;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            min = 0x80;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            min = 0x800;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            min = 0x10000;
            cp = c & 0x07;
        } else {
            return fail(p, line, "invalid UTF-8");
        }
        if (n > p->len - i - 1) {
            return fail(p, line, "invalid UTF-8");
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return fail(p, line, "invalid UTF-8");
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return fail(p, line, "invalid UTF-8");
        }
        i += n + 1;
    }
    return CF_OK;
}

/* Skips blanks, newlines and the three comment styles. */
static int skip_space(struct parser *p)
{
    for (;;) {
        int c = peek_at(p, 0);
        if (c == ' ' || c == '\t' || c == '\r') {
            p->pos++;
        } else if (c == '\n') {
            p->pos++;
            p->line++;
        } else if (c == '#' || (c == '/' && peek_at(p, 1) == '/')) {
            while (p->pos < p->len && p->text[p->pos] != '\n') {
                p->pos++;
            }
        } else if (c == '/' && peek_at(p, 1) == '*') {
            int start_line = p->line;
            p->pos += 2;
            for (;;) {
                if (p->pos >= p->len) {
                    return fail(p, start_line, "unterminated comment");
                }
                if (p->text[p->pos] == '*' && peek_at(p, 1) == '/') {
                    p->pos += 2;
                    break;
                }
                if (p->text[p->pos] == '\n') {
                    p->line++;
                }
                p->pos++;
            }
        } else {
            return CF_OK;
        }
    }
}

static int append_utf8(struct cf_buf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | (cp >> 18));
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return cf_buf_append(b, u, n);
}

/* Reads ndigits hex digits at pos; false if any is missing. */
static bool read_hex(struct parser *p, size_t ndigits, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t k = 0; k < ndigits; k++) {
        int c = peek_at(p, k);
        int d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        } else {
            return false;
        }
        v = (v << 4) | (uint32_t)d;
    }
    p->pos += ndigits;
    *out = v;
    return true;
}

/* Decodes \u and \U escapes (pos is just past the 'u' or 'U'), joining surrogate pairs. */
static int lex_unicode_escape(struct parser *p, bool long_form)
{
    uint32_t cp;
    if (!read_hex(p, long_form ? 8 : 4, &cp)) {
        return fail(p, p->line, "invalid \\%c escape in string", long_form ? 'U' : 'u');
    }
    if (!long_form && cp >= 0xd800 && cp <= 0xdbff) {
        uint32_t lo;
        if (peek_at(p, 0) != '\\' || peek_at(p, 1) != 'u') {
            return fail(p, p->line, "unpaired surrogate in \\u escape");
        }
        p->pos += 2;
        if (!read_hex(p, 4, &lo) || lo < 0xdc00 || lo > 0xdfff) {
            return fail(p, p->line, "unpaired surrogate in \\u escape");
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (cp >= 0xd800 && cp <= 0xdfff) {
        return fail(p, p->line, "unpaired surrogate in \\u escape");
    }
    if (cp == 0) {
        return fail(p, p->line, "NUL character (\\u0000) not allowed in string");
    }
    if (cp > 0x10ffff) {
        return fail(p, p->line, "code point out of range in \\U escape");
    }
    return append_utf8(&p->sbuf, cp) == CF_OK ? CF_OK : oom(p);
}

/* Quoted string; pos is on the opening quote. The decoded text goes to sbuf. */
static int lex_string(struct parser *p)
{
    int start_line = p->line;
    p->pos++;
    for (;;) {
        int c = peek_at(p, 0);
        if (c < 0 || c == '\n' || c == '\r') {
            return fail(p, start_line, "unterminated string");
        }
        if (c == '"') {
            p->pos++;
            return CF_OK;
        }
        if (c < 0x20 && c != '\t') {
            return fail(p, p->line, "control character 0x%02x in string", (unsigned)c);
        }
        if (c != '\\') {
            size_t run = 1;
            while (p->pos + run < p->len) {
                int d = (unsigned char)p->text[p->pos + run];
                if (d == '"' || d == '\\' || (d < 0x20 && d != '\t')) {
                    break;
                }
                run++;
            }
            if (cf_buf_append(&p->sbuf, p->text + p->pos, run) != CF_OK) {
                return oom(p);
            }
            p->pos += run;
            continue;
        }
        int e = peek_at(p, 1);
        char out;
        p->pos += 2;
        switch (e) {
            case 'n':
                out = '\n';
                break;
            case 't':
                out = '\t';
                break;
            case 'r':
                out = '\r';
                break;
            case 'b':
                out = '\b';
                break;
            case 'f':
                out = '\f';
                break;
            case '"':
            case '\\':
            case '/':
                out = (char)e;
                break;
            case 'u':
            case 'U': {
                int rv = lex_unicode_escape(p, e == 'U');
                if (rv != CF_OK) {
                    return rv;
                }
                continue;
            }
            default:
                if (e < 0 || e == '\n' || e == '\r') {
                    return fail(p, start_line, "unterminated string");
                }
                if (e > 0x20 && e < 0x7f) {
                    return fail(p, p->line, "invalid escape '\\%c' in string", e);
                }
                return fail(p, p->line, "invalid escape in string");
        }
        if (cf_buf_append(&p->sbuf, &out, 1) != CF_OK) {
            return oom(p);
        }
    }
}

/* One line of heredoc body: [start, end) without the newline and without a trailing '\r'. */
static void line_bounds(const struct parser *p, size_t at, size_t *start, size_t *end, size_t *next)
{
    size_t e = at;
    while (e < p->len && p->text[e] != '\n') {
        e++;
    }
    *next = e < p->len ? e + 1 : e;
    *start = at;
    if (e > at && p->text[e - 1] == '\r') {
        e--;
    }
    *end = e;
}

static size_t leading_blanks(const char *s, size_t n)
{
    size_t k = 0;
    while (k < n && (s[k] == ' ' || s[k] == '\t')) {
        k++;
    }
    return k;
}

static bool is_terminator(const struct parser *p,
                          size_t s,
                          size_t e,
                          bool indent,
                          const char *anchor,
                          size_t alen)
{
    if (indent) {
        s += leading_blanks(p->text + s, e - s);
    }
    while (e > s && (p->text[e - 1] == ' ' || p->text[e - 1] == '\t')) {
        e--;
    }
    return e - s == alen && memcmp(p->text + s, anchor, alen) == 0;
}

/* Heredoc `<<EOF` or `<<-EOF`; pos is on the first '<'. The body goes to sbuf with a '\n'
 * after every line; `<<-` strips the smallest indentation found on non-blank lines (a tab
 * and a space count the same) and lets the terminator be indented. */
static int lex_heredoc(struct parser *p)
{
    int start_line = p->line;
    p->pos += 2;
    bool indent = false;
    if (peek_at(p, 0) == '-') {
        indent = true;
        p->pos++;
    }
    const char *anchor = p->text + p->pos;
    size_t alen = 0;
    if (!is_ident_start(peek_at(p, 0))) {
        return fail(p, start_line, "expected a heredoc anchor after '<<'");
    }
    while (is_ident_start(peek_at(p, alen)) || is_digit(peek_at(p, alen)) ||
           peek_at(p, alen) == '-') {
        alen++;
    }
    p->pos += alen;
    if (peek_at(p, 0) == '\r') {
        p->pos++;
    }
    if (peek_at(p, 0) != '\n') {
        return fail(p, start_line, "heredoc anchor must be followed by a newline");
    }
    p->pos++;

    /* First pass: find the terminator and the common indentation. */
    size_t body = p->pos;
    size_t at = body;
    size_t min_indent = SIZE_MAX;
    size_t s, e, next;
    int nlines = 0;
    for (;;) {
        if (at >= p->len) {
            return fail(p, start_line, "unterminated heredoc (no closing \"%.*s\" line)", (int)alen,
                        anchor);
        }
        line_bounds(p, at, &s, &e, &next);
        if (is_terminator(p, s, e, indent, anchor, alen)) {
            break;
        }
        size_t lead = leading_blanks(p->text + s, e - s);
        if (lead < e - s && lead < min_indent) {
            min_indent = lead;
        }
        nlines++;
        at = next;
    }
    size_t term = at;
    if (!indent || min_indent == SIZE_MAX) {
        min_indent = 0;
    }

    /* Second pass: copy the body lines. */
    at = body;
    while (at < term) {
        line_bounds(p, at, &s, &e, &next);
        size_t lead = leading_blanks(p->text + s, e - s);
        s += lead < min_indent ? lead : min_indent;
        if (cf_buf_append(&p->sbuf, p->text + s, e - s) != CF_OK ||
            cf_buf_append(&p->sbuf, "\n", 1) != CF_OK) {
            return oom(p);
        }
        at = next;
    }
    line_bounds(p, term, &s, &e, &next);
    p->pos = e;
    p->line += nlines + 1;
    return CF_OK;
}

static int lex_number(struct parser *p)
{
    size_t n = 0;
    if (peek_at(p, 0) == '-') {
        n++;
    }
    if (!is_digit(peek_at(p, n))) {
        return fail(p, p->line, "unexpected character '-'");
    }
    if (peek_at(p, n) == '0' && is_digit(peek_at(p, n + 1))) {
        return fail(p, p->line, "number with a leading zero");
    }
    while (is_digit(peek_at(p, n))) {
        n++;
    }
    bool ok = true;
    if (peek_at(p, n) == '.') {
        n++;
        ok = is_digit(peek_at(p, n));
        while (is_digit(peek_at(p, n))) {
            n++;
        }
    }
    if (ok && (peek_at(p, n) == 'e' || peek_at(p, n) == 'E')) {
        n++;
        if (peek_at(p, n) == '+' || peek_at(p, n) == '-') {
            n++;
        }
        ok = is_digit(peek_at(p, n));
        while (is_digit(peek_at(p, n))) {
            n++;
        }
    }
    if (!ok || is_ident_char(peek_at(p, n))) {
        while (is_ident_char(peek_at(p, n)) || peek_at(p, n) == '+') {
            n++;
        }
        return fail(p, p->line, "invalid number \"%.*s\"", (int)(n > 40 ? 40 : n),
                    p->text + p->pos);
    }
    if (n > HCL_MAX_NUMBER) {
        return fail(p, p->line, "number too long");
    }
    p->cur.kind = T_NUMBER;
    p->cur.start = p->text + p->pos;
    p->cur.len = n;
    p->pos += n;
    return CF_OK;
}

/* Reads the next token into p->cur. */
static int advance(struct parser *p)
{
    int rv = skip_space(p);
    if (rv != CF_OK) {
        return rv;
    }
    cf_buf_reset(&p->sbuf);
    p->cur.line = p->line;
    p->cur.start = p->text + p->pos;
    p->cur.len = 1;
    int c = peek_at(p, 0);
    switch (c) {
        case -1:
            p->cur.kind = T_EOF;
            p->cur.len = 0;
            return CF_OK;
        case '{':
            p->cur.kind = T_LBRACE;
            break;
        case '}':
            p->cur.kind = T_RBRACE;
            break;
        case '[':
            p->cur.kind = T_LBRACK;
            break;
        case ']':
            p->cur.kind = T_RBRACK;
            break;
        case '=':
            p->cur.kind = T_EQUAL;
            break;
        case ',':
            p->cur.kind = T_COMMA;
            break;
        case '"':
            p->cur.kind = T_STRING;
            return lex_string(p);
        case '<':
            if (peek_at(p, 1) != '<') {
                return fail(p, p->line, "unexpected character '<'");
            }
            p->cur.kind = T_HEREDOC;
            return lex_heredoc(p);
        default:
            if (c == '-' || is_digit(c)) {
                return lex_number(p);
            }
            if (is_ident_start(c)) {
                size_t n = 1;
                while (is_ident_char(peek_at(p, n))) {
                    n++;
                }
                p->cur.kind = T_IDENT;
                p->cur.len = n;
                p->pos += n;
                return CF_OK;
            }
            if (c > 0x20 && c < 0x7f) {
                return fail(p, p->line, "unexpected character '%c'", c);
            }
            return fail(p, p->line, "unexpected byte 0x%02x", (unsigned)c);
    }
    p->pos++;
    return CF_OK;
}

static const char *tok_name(enum tok_kind k)
{
    switch (k) {
        case T_EOF:
            return "end of file";
        case T_IDENT:
            return "identifier";
        case T_STRING:
            return "string";
        case T_HEREDOC:
            return "heredoc";
        case T_NUMBER:
            return "number";
        case T_LBRACE:
            return "'{'";
        case T_RBRACE:
            return "'}'";
        case T_LBRACK:
            return "'['";
        case T_RBRACK:
            return "']'";
        case T_EQUAL:
            return "'='";
        case T_COMMA:
            return "','";
    }
    return "token";
}

static struct cf_hcl *new_node(enum cf_hcl_kind kind, int line)
{
    struct cf_hcl *v = cf_calloc(1, sizeof(*v));
    if (v != NULL) {
        v->kind = kind;
        v->line = line;
    }
    return v;
}

/* Makes room for element n of an array whose capacity is implied by its length: 4, then
 * doubling at every power of two. */
static int grow(void **arr, size_t n, size_t elem)
{
    size_t cap;
    if (n == 0) {
        cap = 4;
    } else if (n >= 4 && (n & (n - 1)) == 0) {
        cap = n * 2;
    } else {
        return CF_OK;
    }
    if (cap > SIZE_MAX / elem) {
        return CF_ENOMEM;
    }
    void *q = cf_realloc(*arr, cap * elem);
    if (q == NULL) {
        return CF_ENOMEM;
    }
    *arr = q;
    return CF_OK;
}

/* Appends (key, value) to obj, taking ownership of both even on failure. */
static int add_entry(struct parser *p, struct cf_hcl *obj, char *key, struct cf_hcl *value)
{
    void *arr = obj->entries;
    if (grow(&arr, obj->n_entries, sizeof(*obj->entries)) != CF_OK) {
        cf_free(key);
        cf_hcl_free(value);
        return oom(p);
    }
    obj->entries = arr;
    obj->entries[obj->n_entries].key = key;
    obj->entries[obj->n_entries].value = value;
    obj->n_entries++;
    return CF_OK;
}

/* Appends item to list, taking ownership even on failure. */
static int add_item(struct parser *p, struct cf_hcl *list, struct cf_hcl *item)
{
    void *arr = list->items;
    if (grow(&arr, list->n_items, sizeof(*list->items)) != CF_OK) {
        cf_hcl_free(item);
        return oom(p);
    }
    list->items = arr;
    list->items[list->n_items++] = item;
    return CF_OK;
}

/* Copies the text of the current IDENT or STRING token. */
static char *cur_text(struct parser *p)
{
    if (p->cur.kind == T_IDENT) {
        return cf_strndup(p->cur.start, p->cur.len);
    }
    return cf_strndup(p->sbuf.len > 0 ? (const char *)p->sbuf.data : "", p->sbuf.len);
}

static int check_depth(struct parser *p, int depth)
{
    if (depth > HCL_MAX_DEPTH) {
        return fail(p, p->cur.line, "nesting deeper than %d levels", HCL_MAX_DEPTH);
    }
    return CF_OK;
}

static int parse_value(struct parser *p, int depth, const char *key, struct cf_hcl **out);

/* Entries up to the closing '}' (or EOF at top level); cur is the first token of the body. */
static int parse_body(struct parser *p, struct cf_hcl *obj, int depth, bool top, int open_line);

/* What follows a key: `= value`, `{ body }`, or a label and then more of the same. */
static int parse_item_rest(struct parser *p,
                           const char *key,
                           int key_line,
                           int depth,
                           bool labelled,
                           struct cf_hcl **out)
{
    int rv;
    *out = NULL;
    if (p->cur.kind == T_EQUAL && !labelled) {
        rv = advance(p);
        if (rv != CF_OK) {
            return rv;
        }
        return parse_value(p, depth, key, out);
    }
    if (p->cur.kind == T_LBRACE) {
        int open_line = p->cur.line;
        rv = check_depth(p, depth + 1);
        if (rv != CF_OK) {
            return rv;
        }
        struct cf_hcl *obj = new_node(CF_HCL_OBJECT, key_line);
        if (obj == NULL) {
            return oom(p);
        }
        rv = advance(p);
        if (rv == CF_OK) {
            rv = parse_body(p, obj, depth + 1, false, open_line);
        }
        if (rv != CF_OK) {
            cf_hcl_free(obj);
            return rv;
        }
        *out = obj;
        return CF_OK;
    }
    if (p->cur.kind == T_STRING || p->cur.kind == T_IDENT) {
        rv = check_depth(p, depth + 1);
        if (rv != CF_OK) {
            return rv;
        }
        char *label = cur_text(p);
        if (label == NULL) {
            return oom(p);
        }
        struct cf_hcl *inner = NULL;
        rv = advance(p);
        if (rv == CF_OK) {
            rv = parse_item_rest(p, label, key_line, depth + 1, true, &inner);
        }
        if (rv != CF_OK) {
            cf_free(label);
            return rv;
        }
        struct cf_hcl *obj = new_node(CF_HCL_OBJECT, key_line);
        if (obj == NULL) {
            cf_free(label);
            cf_hcl_free(inner);
            return oom(p);
        }
        rv = add_entry(p, obj, label, inner);
        if (rv != CF_OK) {
            cf_hcl_free(obj);
            return rv;
        }
        *out = obj;
        return CF_OK;
    }
    if (labelled) {
        return fail(p, key_line, "expected '{' after block label \"%.60s\"", key);
    }
    return fail(p, key_line, "expected '=' or '{' after \"%.60s\"", key);
}

static int parse_body(struct parser *p, struct cf_hcl *obj, int depth, bool top, int open_line)
{
    for (;;) {
        if (p->cur.kind == T_EOF) {
            if (top) {
                return CF_OK;
            }
            return fail(p, open_line, "unterminated object (no closing '}')");
        }
        if (p->cur.kind == T_RBRACE) {
            if (top) {
                return fail(p, p->cur.line, "unexpected '}'");
            }
            return advance(p);
        }
        if (p->cur.kind != T_IDENT && p->cur.kind != T_STRING) {
            return fail(p, p->cur.line, "expected a key, found %s", tok_name(p->cur.kind));
        }
        int key_line = p->cur.line;
        char *key = cur_text(p);
        if (key == NULL) {
            return oom(p);
        }
        struct cf_hcl *val = NULL;
        int rv = advance(p);
        if (rv == CF_OK) {
            rv = parse_item_rest(p, key, key_line, depth, false, &val);
        }
        if (rv != CF_OK) {
            cf_free(key);
            return rv;
        }
        rv = add_entry(p, obj, key, val);
        if (rv != CF_OK) {
            return rv;
        }
        if (p->cur.kind == T_COMMA) {
            rv = advance(p);
            if (rv != CF_OK) {
                return rv;
            }
        }
    }
}

static int parse_list(struct parser *p, int depth, struct cf_hcl **out)
{
    int open_line = p->cur.line;
    int rv = check_depth(p, depth + 1);
    if (rv != CF_OK) {
        return rv;
    }
    struct cf_hcl *list = new_node(CF_HCL_LIST, open_line);
    if (list == NULL) {
        return oom(p);
    }
    rv = advance(p);
    while (rv == CF_OK) {
        if (p->cur.kind == T_RBRACK) {
            rv = advance(p);
            break;
        }
        if (p->cur.kind == T_EOF) {
            rv = fail(p, open_line, "unterminated list (no closing ']')");
            break;
        }
        struct cf_hcl *item = NULL;
        rv = parse_value(p, depth + 1, NULL, &item);
        if (rv != CF_OK) {
            break;
        }
        rv = add_item(p, list, item);
        if (rv != CF_OK) {
            break;
        }
        if (p->cur.kind == T_COMMA) {
            rv = advance(p);
        } else if (p->cur.kind == T_EOF) {
            rv = fail(p, open_line, "unterminated list (no closing ']')");
        } else if (p->cur.kind != T_RBRACK) {
            rv = fail(p, p->cur.line, "expected ',' or ']' in list, found %s",
                      tok_name(p->cur.kind));
        }
    }
    if (rv != CF_OK) {
        cf_hcl_free(list);
        return rv;
    }
    *out = list;
    return CF_OK;
}

static int parse_number(struct parser *p, struct cf_hcl *v)
{
    char buf[HCL_MAX_NUMBER + 1];
    memcpy(buf, p->cur.start, p->cur.len);
    buf[p->cur.len] = '\0';
    errno = 0;
    v->num = strtod(buf, NULL);
    if (!isfinite(v->num)) {
        return fail(p, p->cur.line, "number out of range \"%s\"", buf);
    }
    if (strpbrk(buf, ".eE") == NULL) {
        errno = 0;
        long long ll = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->is_int = true;
            v->i = (int64_t)ll;
            v->num = (double)ll;
        }
    }
    return CF_OK;
}

/* Parses one value at cur and leaves cur on the token after it. key names the assignment
 * in messages (NULL inside a list). */
static int parse_value(struct parser *p, int depth, const char *key, struct cf_hcl **out)
{
    int line = p->cur.line;
    struct cf_hcl *v = NULL;
    int rv = CF_OK;
    *out = NULL;
    switch (p->cur.kind) {
        case T_LBRACK:
            return parse_list(p, depth, out);
        case T_LBRACE:
            rv = check_depth(p, depth + 1);
            if (rv != CF_OK) {
                return rv;
            }
            v = new_node(CF_HCL_OBJECT, line);
            if (v == NULL) {
                return oom(p);
            }
            rv = advance(p);
            if (rv == CF_OK) {
                rv = parse_body(p, v, depth + 1, false, line);
            }
            break;
        case T_STRING:
        case T_HEREDOC:
            v = new_node(CF_HCL_STRING, line);
            if (v == NULL) {
                return oom(p);
            }
            v->str = cur_text(p);
            if (v->str == NULL) {
                cf_hcl_free(v);
                return oom(p);
            }
            rv = advance(p);
            break;
        case T_NUMBER:
            v = new_node(CF_HCL_NUMBER, line);
            if (v == NULL) {
                return oom(p);
            }
            rv = parse_number(p, v);
            if (rv == CF_OK) {
                rv = advance(p);
            }
            break;
        case T_IDENT: {
            const char *s = p->cur.start;
            size_t n = p->cur.len;
            if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0)) {
                v = new_node(CF_HCL_BOOL, line);
                if (v == NULL) {
                    return oom(p);
                }
                v->b = n == 4;
            } else if (n == 4 && memcmp(s, "null", 4) == 0) {
                v = new_node(CF_HCL_NULL, line);
                if (v == NULL) {
                    return oom(p);
                }
            } else {
                return fail(p, line, "unexpected identifier \"%.*s\" (strings must be quoted)",
                            (int)(n > 60 ? 60 : n), s);
            }
            rv = advance(p);
            break;
        }
        case T_EOF:
        case T_RBRACE:
        case T_RBRACK:
        case T_EQUAL:
        case T_COMMA:
            if (key != NULL) {
                return fail(p, line, "expected a value for \"%.60s\", found %s", key,
                            tok_name(p->cur.kind));
            }
            return fail(p, line, "expected a value in list, found %s", tok_name(p->cur.kind));
    }
    if (rv != CF_OK) {
        cf_hcl_free(v);
        return rv;
    }
    *out = v;
    return CF_OK;
}

int cf_hcl_parse(const char *text,
                 size_t len,
                 const char *filename,
                 struct cf_hcl **out,
                 char errmsg[CF_ERRMSG_SIZE])
{
    struct parser p;
    memset(&p, 0, sizeof(p));
    p.text = text != NULL ? text : "";
    p.len = text != NULL ? len : 0;
    p.line = 1;
    p.filename = filename != NULL ? filename : "<input>";
    p.errmsg = errmsg;
    cf_buf_init(&p.sbuf);
    *out = NULL;

    int rv = check_encoding(&p);
    if (rv != CF_OK) {
        return rv;
    }
    if (p.len >= 3 && memcmp(p.text, "\xef\xbb\xbf", 3) == 0) {
        p.pos = 3;
    }
    struct cf_hcl *root = new_node(CF_HCL_OBJECT, 1);
    if (root == NULL) {
        return oom(&p);
    }
    rv = advance(&p);
    if (rv == CF_OK) {
        rv = parse_body(&p, root, 0, true, 1);
    }
    cf_buf_close(&p.sbuf);
    if (rv != CF_OK) {
        cf_hcl_free(root);
        return rv;
    }
    *out = root;
    return CF_OK;
}

void cf_hcl_free(struct cf_hcl *v)
{
    if (v == NULL) {
        return;
    }
    for (size_t k = 0; k < v->n_items; k++) {
        cf_hcl_free(v->items[k]);
    }
    for (size_t k = 0; k < v->n_entries; k++) {
        cf_free(v->entries[k].key);
        cf_hcl_free(v->entries[k].value);
    }
    cf_free(v->items);
    cf_free(v->entries);
    cf_free(v->str);
    cf_free(v);
}

const struct cf_hcl *cf_hcl_get(const struct cf_hcl *obj, const char *key)
{
    if (obj == NULL || obj->kind != CF_HCL_OBJECT || key == NULL) {
        return NULL;
    }
    for (size_t k = 0; k < obj->n_entries; k++) {
        if (strcmp(obj->entries[k].key, key) == 0) {
            return obj->entries[k].value;
        }
    }
    return NULL;
}

const char *cf_hcl_kind_name(enum cf_hcl_kind k)
{
    switch (k) {
        case CF_HCL_NULL:
            return "null";
        case CF_HCL_BOOL:
            return "bool";
        case CF_HCL_NUMBER:
            return "number";
        case CF_HCL_STRING:
            return "string";
        case CF_HCL_LIST:
            return "list";
        case CF_HCL_OBJECT:
            return "object";
    }
    return "unknown";
}
