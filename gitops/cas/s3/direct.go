package s3

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// emptySHA256 is the hex SHA-256 of an empty body, the payload hash of a
// GET or HEAD.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// direct sends the reads of a pull (GET and HEAD of one object) with
// net/http, signed by the SDK's SigV4 signer, without the SDK's
// per-request middleware stack: on 64 KiB objects that stack cost more
// CPU than the transfer. The endpoint, signing name and region are the
// ones the SDK itself resolves for the bucket; buckets it would sign
// otherwise (S3 Express, access-point ARNs, SigV4a) keep the SDK path.
type direct struct {
	base    url.URL // the bucket's endpoint
	service string  // signing name
	region  string  // signing region
	creds   aws.CredentialsProvider
	signer  *v4.Signer
	hc      aws.HTTPClient
}

// newDirect returns the direct path for bucket under the client options
// o and config ac, or nil where the SDK must sign.
func newDirect(ctx context.Context, ac aws.Config, o awss3.Options, bucket string) *direct {
	if ac.Credentials == nil || ac.HTTPClient == nil || strings.HasPrefix(bucket, "arn:") || o.EndpointResolverV2 == nil {
		return nil
	}
	p := awss3.EndpointParameters{
		Bucket:         aws.String(bucket),
		Region:         aws.String(o.Region),
		Endpoint:       o.BaseEndpoint,
		ForcePathStyle: aws.Bool(o.UsePathStyle),
		Accelerate:     aws.Bool(o.UseAccelerate),
		UseFIPS:        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
	}
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, p)
	if err != nil || len(ep.Headers) > 0 || ep.URI.RawQuery != "" {
		return nil
	}
	opts, _ := smithyauth.GetAuthOptions(&ep.Properties)
	if len(opts) != 1 || (opts[0].SchemeID != "sigv4" && opts[0].SchemeID != smithyauth.SchemeIDSigV4) {
		return nil
	}
	d := &direct{base: ep.URI, service: "s3", region: o.Region, creds: ac.Credentials, hc: ac.HTTPClient}
	if n, ok := smithyhttp.GetSigV4SigningName(&opts[0].SignerProperties); ok {
		d.service = n
	}
	if r, ok := smithyhttp.GetSigV4SigningRegion(&opts[0].SignerProperties); ok {
		d.region = r
	}
	d.base.Path = strings.TrimSuffix(d.base.Path, "/")
	d.base.RawPath = ""
	// S3 signs the path as sent, not escaped a second time.
	d.signer = v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true })
	return d
}

// do sends a signed GET or HEAD of key and returns the response when its
// status is 200; other answers are a *statusError.
func (d *direct) do(ctx context.Context, method, key string) (*http.Response, error) {
	u := d.base
	u.Path += "/" + key
	u.RawPath = awsEscapePath(u.Path)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	// Objects are stored as sent; no transparent decompression.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	creds, err := d.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if err := d.signer.SignHTTP(ctx, creds, req, emptySHA256, d.service, d.region, time.Now().UTC()); err != nil {
		return nil, err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	se := &statusError{Method: method, Status: resp.StatusCode}
	var body struct {
		Code    string
		Message string
	}
	if method != http.MethodHead && xml.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil {
		se.Code, se.Message = body.Code, body.Message
	}
	if se.Code == "" && resp.StatusCode == http.StatusNotFound && method == http.MethodHead {
		se.Code = "NotFound"
	}
	return nil, se
}

// statusError is an S3 answer other than 200 to a direct request. It
// has the methods of the SDK's errors that statusOf reads
// (HTTPStatusCode, and smithy.APIError's), so both client paths share one
// translation.
type statusError struct {
	Method  string
	Status  int
	Code    string // S3 error code, when the body had one
	Message string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.Method, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *statusError) HTTPStatusCode() int  { return e.Status }
func (e *statusError) ErrorCode() string    { return e.Code }
func (e *statusError) ErrorMessage() string { return e.Message }

func (e *statusError) ErrorFault() smithy.ErrorFault {
	if e.Status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// awsEscapePath escapes a path the way SigV4 wants it: every byte but
// the unreserved characters of RFC 3986 and '/'.
func awsEscapePath(p string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
