package action

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/medcad/medcad/internal/redact"
)

// RetryPolicy says how the API transport retries.
type RetryPolicy struct {
	// Retries is how many times one request is retried after a server
	// error, a network error or a rate limit (default 5).
	Retries int
	// Backoff is the first wait after a server error; it doubles on every
	// retry up to MaxBackoff (defaults 1 s and 30 s).
	Backoff, MaxBackoff time.Duration
	// MaxRateWait is the longest wait for a rate limit's reset; a later
	// reset is returned as the error it is (default 15 min).
	MaxRateWait time.Duration
	// Sleep waits d or until ctx ends; nil uses a timer. Tests record it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock rate-limit resets are measured with (nil: time.Now).
	Now func() time.Time
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Retries == 0 {
		p.Retries = 5
	}
	if p.Backoff == 0 {
		p.Backoff = time.Second
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = 30 * time.Second
	}
	if p.MaxRateWait == 0 {
		p.MaxRateWait = 15 * time.Minute
	}
	if p.Sleep == nil {
		p.Sleep = sleepCtx
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return p
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transport adds the token, retries server errors with backoff and rate
// limits after their reset, and logs each request without credentials.
type transport struct {
	base  http.RoundTripper
	token string
	log   *slog.Logger
	p     RetryPolicy
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		r := req.Clone(ctx)
		if attempt > 0 && req.Body != nil {
			if req.GetBody == nil {
				return nil, errNoRewind
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		if t.token != "" {
			r.Header.Set("Authorization", "token "+t.token)
		}
		resp, err := t.base.RoundTrip(r)
		wait, retry := t.retryAfter(resp, err, attempt)
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		// Only method, path and status: never headers, query or bodies.
		t.log.Debug("github api", "method", req.Method, "path", req.URL.Path, "status", status, "attempt", attempt+1, "retry_in", wait.String())
		if !retry || attempt >= t.p.Retries {
			if err != nil {
				return resp, redact.Error(err, t.token)
			}
			return t.redactBody(resp)
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := t.p.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// maxErrorBody bounds the error body kept for go-github to parse.
const maxErrorBody = 1 << 20

// redactBody replaces the body of an error response (status 400 and up)
// with a redacted copy: servers echo what they were sent (a 401 that
// quotes the token, say), and go-github puts the body's message into its
// error, which reaches the job log. Success bodies pass untouched.
func (t *transport) redactBody(resp *http.Response) (*http.Response, error) {
	if resp == nil || resp.StatusCode < 400 || resp.Body == nil {
		return resp, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	if err != nil {
		return nil, redact.Error(fmt.Errorf("github api: reading the %d answer: %w", resp.StatusCode, err), t.token)
	}
	clean := []byte(redact.String(string(data), t.token))
	resp.Body = io.NopCloser(bytes.NewReader(clean))
	resp.ContentLength = int64(len(clean))
	resp.Header.Del("Content-Length")
	return resp, nil
}

type rewindError struct{}

func (rewindError) Error() string {
	return "github api: cannot retry a request whose body cannot be re-read"
}

var errNoRewind error = rewindError{}

// retryAfter decides whether a response is retried and after how long.
func (t *transport) retryAfter(resp *http.Response, err error, attempt int) (time.Duration, bool) {
	backoff := min(t.p.Backoff<<attempt, t.p.MaxBackoff)
	if err != nil {
		return backoff, true
	}
	switch {
	case resp.StatusCode >= 500:
		return backoff, true
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusForbidden:
		if s := resp.Header.Get("Retry-After"); s != "" { // secondary rate limit
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				d := time.Duration(n) * time.Second
				return d, d <= t.p.MaxRateWait
			}
		}
		if resp.Header.Get("X-RateLimit-Remaining") == "0" {
			reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
			if err != nil {
				return backoff, true
			}
			d := time.Unix(reset, 0).Sub(t.p.Now()) + time.Second
			d = max(d, time.Second)
			return d, d <= t.p.MaxRateWait
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			return backoff, true
		}
	}
	return 0, false
}
