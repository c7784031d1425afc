package cas

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
)

// TestS3DirectEndpoints checks which buckets read without the SDK's
// middleware, and at which address: the one the SDK resolves.
func TestS3DirectEndpoints(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	creds := credentials.NewStaticCredentialsProvider("k", "s", "")
	for _, tc := range []struct {
		cfg    S3Config
		want   string // base URL; "" for the SDK path
		region string
	}{
		{S3Config{Bucket: "data", Endpoint: "http://127.0.0.1:7070", PathStyle: true}, "http://127.0.0.1:7070/data", "us-east-1"},
		{S3Config{Bucket: "data", Region: "eu-west-1"}, "https://data.s3.eu-west-1.amazonaws.com", "eu-west-1"},
		{S3Config{Bucket: "my.data", Region: "eu-west-1"}, "https://s3.eu-west-1.amazonaws.com/my.data", "eu-west-1"},
		{S3Config{Bucket: "data--use1-az4--x-s3", Region: "us-east-1"}, "", ""},
		{S3Config{Bucket: "arn:aws:s3:us-east-1:123456789012:accesspoint/ap", Region: "us-east-1"}, "", ""},
	} {
		tc.cfg.Credentials = creds
		b, err := NewS3(context.Background(), tc.cfg)
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
