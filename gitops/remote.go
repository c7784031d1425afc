package gitops

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/gitops/cas/local"
	"github.com/medcad/medcad/gitops/cas/s3"
)

// OpenRemote opens the remote that r names: file://PATH, a folder (a
// relative PATH is taken from the project folder root), or
// s3://BUCKET/PREFIX. The backend retries transient failures and verifies
// the objects it reads. log receives an S3 SDK's own log lines at debug
// level (nil: dropped).
func OpenRemote(ctx context.Context, r Remote, root string, log *slog.Logger) (cas.Backend, error) {
	return openRemote(ctx, r, root, log, nil)
}

// openRemote is OpenRemote; a non-nil counter counts what is read.
func openRemote(ctx context.Context, r Remote, root string, log *slog.Logger, counter *cas.Counter) (cas.Backend, error) {
	var b cas.Backend
	switch {
	case strings.HasPrefix(r.URL, "file://"):
		p := strings.TrimPrefix(r.URL, "file://")
		if p == "" {
			return nil, fmt.Errorf("remote %q: empty path", r.URL)
		}
		if !filepath.IsAbs(p) && !strings.HasPrefix(p, "/") {
			p = filepath.Join(root, p)
		}
		l, err := local.New(p)
		if err != nil {
			return nil, err
		}
		b = l
	case strings.HasPrefix(r.URL, "s3://"):
		u, err := url.Parse(r.URL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("remote %q: want s3://BUCKET/PREFIX", r.URL)
		}
		s, err := s3.New(ctx, s3.Config{
			Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"),
			Region: r.Region, Endpoint: r.Endpoint, PathStyle: r.PathStyle,
			Log: log,
		})
		if err != nil {
			return nil, err
		}
		b = s
	default:
		return nil, fmt.Errorf("remote %q: want file://PATH or s3://BUCKET/PREFIX", r.URL)
	}
	b = cas.WithRetry(b, cas.RetryPolicy{})
	if counter != nil {
		b = cas.WithCounter(b, counter) // under the verifier, which the store recognises
	}
	return cas.WithVerify(b), nil
}
