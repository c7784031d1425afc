package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/medcad/medcad/gitops/cas/castest"
)

// TestDataS3CredentialErrors pushes to versitygw with wrong, unknown and
// missing credentials and to a missing bucket: each fails with one line
// on stderr and nothing else (no SDK log lines), and no request is sent
// twice: such errors are not transient, so they are not retried.
func TestDataS3CredentialErrors(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	srv := castest.Versitygw(t)
	_, bucket := srv.NewBucket(t)
	// A proxy that records the requests that reach the server.
	var mu sync.Mutex
	var seen []string
	target, _ := url.Parse(srv.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ps.Close)
	proxy := ps.URL
	// An instance metadata service that has no role, as on a machine
	// outside EC2 that answers (the SDK then warns about IMDSv1).
	var imdsRequests atomic.Int64
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imdsRequests.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(imds.Close)
	noFiles := []string{"HOME=" + t.TempDir(), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PROFILE=", "AWS_SESSION_TOKEN="}
	for _, tt := range []struct {
		name     string
		bucket   string
		env      []string
		want     string // in the one line of stderr
		requests int    // to the S3 server, at most
	}{
		{"wrong secret", bucket, []string{"AWS_ACCESS_KEY_ID=" + castest.AccessKey, "AWS_SECRET_ACCESS_KEY=wrong", "AWS_EC2_METADATA_DISABLED=true"},
			"remote refused access", 1},
		{"unknown key", bucket, []string{"AWS_ACCESS_KEY_ID=NOSUCHKEY", "AWS_SECRET_ACCESS_KEY=wrong", "AWS_EC2_METADATA_DISABLED=true"},
			"remote refused access", 4},
		{"no such bucket", "nosuchbucket", s3Env(),
			`bucket "nosuchbucket" does not exist`, 4},
		{"no credentials", bucket, []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL, "AWS_EC2_METADATA_DISABLED="},
			"no AWS credentials (set AWS_ACCESS_KEY_ID", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			remote := fmt.Sprintf("url = \"s3://%s/p\"\nendpoint = %q\npath_style = true", tt.bucket, proxy)
			a := project(t, bin, remote)
			makeFiles(t, filepath.Join(a, "data", "b1"), 1, false)
			medcad(t, bin, a, s3Env(), "data", "add", "data/b1", "--name", "b1")
			mu.Lock()
			seen = nil
			mu.Unlock()
			out, err := medcadErr(bin, a, append(noFiles, tt.env...), "data", "push")
			mu.Lock()
			reqs := slices.Clone(seen)
			mu.Unlock()
			slices.Sort(reqs)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if err == nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "medcad: data push: ") || !strings.Contains(lines[0], tt.want) {
				t.Errorf("data push: %v\n%s\nwant one line with %q", err, out, tt.want)
			}
			// A HEAD answers 404 without a body, so an unknown key or
			// bucket is only seen at the first PUT; the push's parallel
			// requests each go out once, none again.
			if len(reqs) > tt.requests || len(slices.Compact(slices.Clone(reqs))) != len(reqs) {
				t.Errorf("data push made %d requests to the server, want at most %d, none repeated (not retried): %q", len(reqs), tt.requests, reqs)
			}
		})
	}
	if imdsRequests.Load() == 0 {
		t.Error("the credential chain never asked the metadata service: the IMDSv1 warning was not provoked")
	}
}
