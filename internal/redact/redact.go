// Package redact removes credentials from text that servers send back
// (error bodies, echoed requests, URLs) before it reaches a log, an error
// message or a comment: GitHub tokens, "token …", Bearer and Basic
// credentials, Authorization headers, user:password in URLs and AWS
// secrets in key=value, header or XML form.
//
// It errs on the side of hiding: a word after "Basic" or "Bearer" that
// looks like a credential is hidden even where it was prose.
package redact

import (
	"regexp"
	"strings"
)

// Mask replaces each credential.
const Mask = "[redacted]"

// credChars is what a token, base64 credential or signature is made of.
const credChars = `[A-Za-z0-9._~+/=\-]`

var rules = []struct {
	re   *regexp.Regexp
	repl func(m []string) string
}{
	// Authorization headers (and Proxy-Authorization), quoted or not:
	// the whole value, whatever its scheme.
	{regexp.MustCompile(`(?i)(authorization["']?\s*[:=]\s*["']?)[^"'\r\n]+`), func(m []string) string { return m[1] + Mask }},
	// user:password@ (or token@) in URLs of any scheme; the password may
	// hold a "/" that should have been escaped (AWS secret keys do).
	{regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@"'<>:]*(?::[^\s@"'<>]*)?@`), func(m []string) string { return m[1] + Mask + "@" }},
	// GitHub tokens: personal (classic and fine-grained), OAuth, user to
	// server, server to server (installation, Actions) and refresh.
	{regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})`), func([]string) string { return Mask }},
	// Bearer and Basic credentials.
	{regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)(` + credChars + `{8,})`), func(m []string) string { return m[1] + m[2] + Mask }},
	// "token XYZ": hidden when XYZ looks like a token (a digit or an
	// underscore in it), so "token expired" stays readable.
	{regexp.MustCompile(`(?i)\b(token)(\s+)(` + credChars + `{8,})`), func(m []string) string {
		if strings.ContainsAny(m[3], "0123456789_") {
			return m[1] + m[2] + Mask
		}
		return m[0]
	}},
	// key=value, key: value and "key": "value" for secret-bearing names.
	{regexp.MustCompile(`(?i)\b((?:access_|refresh_|id_|session_|security_|auth_)?token|password|passwd|pwd|secret|client_secret|aws_secret_access_key|secret_access_key|aws_session_token|x-amz-security-token)(["']?\s*[:=]\s*["']?)([^\s"'&,;<>]+)`), func(m []string) string {
		return m[1] + m[2] + Mask
	}},
	// XML elements of STS and S3 answers.
	{regexp.MustCompile(`(?i)(<(?:SecretAccessKey|SessionToken|Token|Password)>)[^<]*`), func(m []string) string { return m[1] + Mask }},
}

// String returns s with credentials replaced by Mask: known secrets (the
// token the caller sent, say) wherever they appear, and whatever looks
// like one.
func String(s string, known ...string) string {
	for _, k := range known {
		if len(k) >= 4 { // a shorter "secret" would mask ordinary text
			s = strings.ReplaceAll(s, k, Mask)
		}
	}
	for _, r := range rules {
		s = r.re.ReplaceAllStringFunc(s, func(m string) string {
			return r.repl(r.re.FindStringSubmatch(m))
		})
	}
	return s
}

// Error wraps err so that its message is redacted; errors.Is and
// errors.As still see err. Nil stays nil.
func Error(err error, known ...string) error {
	if err == nil {
		return nil
	}
	return &redacted{err: err, known: known}
}

type redacted struct {
	err   error
	known []string
}

func (e *redacted) Error() string { return String(e.err.Error(), e.known...) }
func (e *redacted) Unwrap() error { return e.err }
