// Thin C shim over RE2; see include/CRE2.h.
#include "CRE2.h"

#include <re2/re2.h>

#include <cstdio>
#include <cstring>
#include <new>
#include <string>

struct cre2_regex {
    RE2 re;
    explicit cre2_regex(re2::StringPiece p, const RE2::Options &o) : re(p, o) {}
};

extern "C" cre2_regex *cre2_new(const char *pattern, size_t len, char *errbuf, size_t errlen) {
    RE2::Options opts;
    opts.set_log_errors(false);  // errors are reported to the caller, not to stderr
    cre2_regex *r = new (std::nothrow) cre2_regex(re2::StringPiece(pattern, len), opts);
    if (r == nullptr) {
        if (errbuf && errlen > 0) std::snprintf(errbuf, errlen, "out of memory");
        return nullptr;
    }
    if (!r->re.ok()) {
        if (errbuf && errlen > 0) {
            const std::string &e = r->re.error();
            size_t n = e.size() < errlen - 1 ? e.size() : errlen - 1;
            std::memcpy(errbuf, e.data(), n);
            errbuf[n] = '\0';
        }
        delete r;
        return nullptr;
    }
    return r;
}

extern "C" int cre2_full_match(const cre2_regex *re, const char *text, size_t len) {
    if (re == nullptr) return 0;
    return RE2::FullMatch(re2::StringPiece(text, len), re->re) ? 1 : 0;
}

extern "C" void cre2_free(cre2_regex *re) { delete re; }
