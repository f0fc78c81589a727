/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP framer: where one top-level JSON text of the input stream ends,
 * and what of it json-glib may be handed.
 */
#include "monitor/qmp.h"

#include <string.h>

#define QMP_MAX_TEXT  (64 << 20) /* QEMU's token limit */
#define QMP_MAX_DEPTH 1024

/*
 * The framer splits the stream into texts by QEMU's lexical rules, and is
 * also what makes a text safe for json-glib, whose lexer differs: it takes
 * '/' to the next '/' for a comment, reads '...' strings without escapes and
 * reads past a string's end after an odd \u escape. Were the two to
 * disagree on where strings end, brackets the framer took for string
 * contents would nest in the parser beyond the depth limit, and its
 * recursion would overflow the stack. So the text handed on holds only what
 * both read alike: strings all double-quoted ('...' rewritten, QEMU's
 * escapes in them kept), escapes as QEMU's lexer accepts them (\u with four
 * hex digits, surrogates in pairs), no '/' outside strings. A text breaking
 * these rules or the limits is refused at once with QEMU's message, and the
 * rest of it is skipped unbuffered: one error per text.
 */
struct QmpFramer {
    GString *buf;
    QmpTextFunc cb; /* during qmp_framer_feed */
    void *opaque;
    size_t depth;
    char quote;      /* 0, or the quote that opened the string: '"' or '\'' */
    unsigned escape; /* 0; 1 after a backslash; 2 + the hex digits read of \uXXXX */
    unsigned code;   /* the \u escape's value so far */
    bool want_low;   /* a high surrogate was read: "\u" and a low one must follow */
    bool scalar;     /* inside a top-level bare token */
    bool refused;    /* the text was refused: the rest of it is skipped */
};

QmpFramer *qmp_framer_new(void)
{
    QmpFramer *f = g_new0(QmpFramer, 1);
    f->buf = g_string_new(NULL);
    return f;
}

void qmp_framer_free(QmpFramer *f)
{
    if (f) {
        g_string_free(f->buf, TRUE);
        g_free(f);
    }
}

/* The text ends here: handed on unless it was refused. */
static void framer_end(QmpFramer *f)
{
    if (!f->refused) {
        f->cb(f->opaque, f->buf->str, f->buf->len, NULL);
    }
    g_string_truncate(f->buf, 0);
    f->depth = 0;
    f->quote = 0;
    f->escape = 0;
    f->want_low = false;
    f->scalar = false;
    f->refused = false;
}

static void framer_refuse(QmpFramer *f, const char *error)
{
    if (!f->refused) {
        f->cb(f->opaque, f->buf->str, f->buf->len, error);
        g_string_truncate(f->buf, 0);
        f->refused = true;
    }
}

static void framer_append(QmpFramer *f, const char *s, size_t len)
{
    if (f->refused) {
        return;
    }
    if (f->buf->len + len > QMP_MAX_TEXT) {
        framer_refuse(f, "JSON token size limit exceeded");
        return;
    }
    g_string_append_len(f->buf, s, (gssize)len);
}

static void framer_append_c(QmpFramer *f, char c)
{
    framer_append(f, &c, 1);
}

static void framer_bad_escape(QmpFramer *f)
{
    framer_refuse(f, "JSON parse error, invalid escape sequence in string");
}

/* One character of a \uXXXX escape's hex digits; false if c is none. */
static bool framer_hex_digit(QmpFramer *f, char c)
{
    if (!g_ascii_isxdigit(c)) {
        framer_refuse(f, "JSON parse error, invalid hex escape sequence in string");
        f->escape = 0;
        f->want_low = false;
        return false;
    }
    framer_append_c(f, c);
    f->code = f->code << 4 | (unsigned)g_ascii_xdigit_value(c);
    if (++f->escape == 6) {
        f->escape = 0;
        bool high = f->code >= 0xd800 && f->code <= 0xdbff;
        bool low = f->code >= 0xdc00 && f->code <= 0xdfff;
        if (f->want_low ? !low : low) {
            framer_bad_escape(f);
        }
        f->want_low = !f->want_low && high;
    }
    return true;
}

/* One character inside a string; true when it closed the string. */
static bool framer_string_char(QmpFramer *f, char c)
{
    if (f->escape >= 2 && framer_hex_digit(f, c)) {
        return false;
    }
    if (f->escape == 1) {
        f->escape = 0;
        if (f->want_low && c != 'u') {
            framer_bad_escape(f);
            f->want_low = false;
        }
        if (c == 'u') {
            framer_append(f, "\\u", 2);
            f->escape = 2;
            f->code = 0;
        } else if (c == '\'') {
            framer_append_c(f, c); /* needs no escape in "..." */
        } else if (c && strchr("\"\\/bfnrt", c)) {
            char esc[2] = {'\\', c};
            framer_append(f, esc, 2);
        } else {
            framer_bad_escape(f);
        }
        return false;
    }
    if (f->want_low && c != '\\') {
        framer_bad_escape(f);
        f->want_low = false;
    }
    if (c == '\\') {
        f->escape = 1;
    } else if (c == f->quote) {
        framer_append_c(f, '"');
        f->quote = 0;
        return true;
    } else if (c == '"') {
        framer_append(f, "\\\"", 2); /* inside '...' */
    } else {
        framer_append_c(f, c);
    }
    return false;
}

void qmp_framer_feed(QmpFramer *f, const char *data, size_t len, QmpTextFunc cb, void *opaque)
{
    f->cb = cb;
    f->opaque = opaque;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        bool space = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        if (f->quote) {
            if (framer_string_char(f, c) && f->depth == 0) {
                framer_end(f); /* a top-level string */
            }
            continue;
        }
        if (f->scalar && (space || c == '{' || c == '[')) {
            framer_end(f);
        }
        if (f->depth == 0 && !f->scalar) {
            if (space) {
                continue;
            }
            if (c == '}' || c == ']') {
                /* A stray closer is a text of its own: the parser reports it at once. */
                framer_append_c(f, c);
                framer_end(f);
                continue;
            }
            if (c != '{' && c != '[' && c != '"' && c != '\'') {
                f->scalar = true;
            }
        }
        if (f->scalar) {
            framer_append_c(f, c); /* holds no bracket, so no nesting */
            continue;
        }
        if (c == '"' || c == '\'') {
            f->quote = c;
            framer_append_c(f, '"');
            continue;
        }
        if (c == '/') {
            framer_refuse(f, "JSON parse error, stray '/'");
        }
        framer_append_c(f, c);
        if (c == '{' || c == '[') {
            if (++f->depth > QMP_MAX_DEPTH) {
                framer_refuse(f, "JSON nesting depth limit exceeded");
            }
        } else if ((c == '}' || c == ']') && --f->depth == 0) {
            framer_end(f);
        }
    }
}
