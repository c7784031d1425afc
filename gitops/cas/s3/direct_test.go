package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/medcad/medcad/gitops/cas"
)

// TestDirectEndpoints checks which buckets read without the SDK's
// middleware, and at which address: the one the SDK resolves.
func TestDirectEndpoints(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	creds := credentials.NewStaticCredentialsProvider("k", "s", "")
	for _, tc := range []struct {
		cfg    Config
		want   string // base URL; "" for the SDK path
		region string
	}{
		{Config{Bucket: "data", Endpoint: "http://127.0.0.1:7070", PathStyle: true}, "http://127.0.0.1:7070/data", "us-east-1"},
		{Config{Bucket: "data", Region: "eu-west-1"}, "https://data.s3.eu-west-1.amazonaws.com", "eu-west-1"},
		{Config{Bucket: "my.data", Region: "eu-west-1"}, "https://s3.eu-west-1.amazonaws.com/my.data", "eu-west-1"},
		{Config{Bucket: "data--use1-az4--x-s3", Region: "us-east-1"}, "", ""},
		{Config{Bucket: "arn:aws:s3:us-east-1:123456789012:accesspoint/ap", Region: "us-east-1"}, "", ""},
	} {
		tc.cfg.Credentials = creds
		b, err := New(context.Background(), tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.cfg.Bucket, err)
		}
		switch {
		case tc.want == "" && b.direct != nil:
			t.Errorf("%s: direct reads at %s; want the SDK's", tc.cfg.Bucket, b.direct.base.String())
		case tc.want != "" && b.direct == nil:
			t.Errorf("%s: SDK reads; want direct ones at %s", tc.cfg.Bucket, tc.want)
		case tc.want != "" && (b.direct.base.String() != tc.want || b.direct.region != tc.region || b.direct.service != "s3"):
			t.Errorf("%s: direct reads at %s signed for %s/%s; want %s, %s/s3", tc.cfg.Bucket,
				b.direct.base.String(), b.direct.region, b.direct.service, tc.want, tc.region)
		}
	}
}

func TestAWSEscapePath(t *testing.T) {
	for in, want := range map[string]string{
		"/b/store/objects/ab/cd": "/b/store/objects/ab/cd",
		"/b/a b+c=d&e:f@g,h$i":   "/b/a%20b%2Bc%3Dd%26e%3Af%40g%2Ch%24i",
		"/b/ü~_.-":               "/b/%C3%BC~_.-",
	} {
		if got := awsEscapePath(in); got != want {
			t.Errorf("awsEscapePath(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestErrTranslation: an error of a direct request and the SDK's error for
// the same answer become the same sentinel.
func TestErrTranslation(t *testing.T) {
	var _ smithy.APIError = (*statusError)(nil)
	b := &Backend{cfg: Config{Bucket: "data"}}
	sdk := func(status int, code string) error {
		resp := &smithyhttp.Response{Response: &http.Response{StatusCode: status}}
		return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &smithyhttp.ResponseError{
			Response: resp, Err: &smithy.GenericAPIError{Code: code, Message: "m"},
		}}
	}
	for _, tc := range []struct {
		status int
		code   string
		want   error
	}{
		{http.StatusNotFound, "NoSuchKey", cas.ErrNotFound},
		{http.StatusNotFound, "NotFound", cas.ErrNotFound},
		{http.StatusNotFound, "", cas.ErrNotFound},
		{http.StatusForbidden, "SignatureDoesNotMatch", cas.ErrPermission},
		{http.StatusForbidden, "", cas.ErrPermission},
		{http.StatusServiceUnavailable, "SlowDown", cas.ErrThrottled},
		{http.StatusTooManyRequests, "", cas.ErrThrottled},
		{http.StatusPreconditionFailed, "PreconditionFailed", cas.ErrExists},
		{http.StatusBadRequest, "BadDigest", cas.ErrCorrupt},
		{http.StatusNotFound, "NoSuchBucket", cas.ErrUnsupported},
	} {
		ctx := context.Background()
		for _, err := range []error{
			&statusError{Method: http.MethodGet, Status: tc.status, Code: tc.code},
			sdk(tc.status, tc.code),
		} {
			if got := b.err(ctx, "k", err); !errors.Is(got, tc.want) {
				t.Errorf("%d %s (%T): %v; want %v", tc.status, tc.code, err, got, tc.want)
			}
		}
	}
	if got := b.err(context.Background(), "k", fmt.Errorf("dial: %w", errors.New("refused"))); got == nil || errors.Is(got, cas.ErrNotFound) {
		t.Errorf("network error: %v; want it unclassified", got)
	}
}

// TestErrRedacted: what an S3 server echoes (the canonical request with
// its session token, a secret key, credentials in a URL) does not reach
// the error, which still classifies.
func TestErrRedacted(t *testing.T) {
	const (
		secret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		session = "FwoGZXIvYXdzEBYaDHsessiontoken"
	)
	b := &Backend{cfg: Config{Bucket: "data"}}
	msg := "The request signature we calculated does not match. CanonicalRequest: GET /k\nx-amz-security-token:" + session +
		"\nStringToSign ... aws_secret_access_key=" + secret + " <SecretAccessKey>" + secret + "</SecretAccessKey> via https://AKIDEXAMPLE:" + secret + "@s3.example.org/data"
	for _, tc := range []struct {
		err  error
		want error
	}{
		{&statusError{Method: http.MethodGet, Status: http.StatusForbidden, Code: "SignatureDoesNotMatch", Message: msg}, cas.ErrPermission},
		{&smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 500}}, Err: &smithy.GenericAPIError{Code: "InternalError", Message: msg},
		}}, nil},
	} {
		got := b.err(context.Background(), "k", tc.err)
		for _, s := range []string{secret, session} {
			if strings.Contains(got.Error(), s) {
				t.Errorf("%T: %q in the error: %v", tc.err, s, got)
			}
		}
		if tc.want != nil && !errors.Is(got, tc.want) {
			t.Errorf("%T: %v; want %v", tc.err, got, tc.want)
		}
		if !strings.Contains(got.Error(), "signature we calculated does not match") {
			t.Errorf("%T: the server's words are lost: %v", tc.err, got)
		}
	}
}
