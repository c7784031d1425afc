// Package s3 is a cas.Backend in an S3 bucket (aws-sdk-go-v2), for AWS
// and S3-compatible servers (MinIO, versitygw, …).
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/sync/errgroup"

	"github.com/medcad/medcad/gitops/cas"
	"github.com/medcad/medcad/internal/redact"
)

// Defaults.
const (
	defaultPartSize  = 32 << 20
	defaultThreshold = 64 << 20
	partJobs         = 4
)

// Config configures an S3 remote.
type Config struct {
	Bucket    string
	Prefix    string // key prefix, without slashes at the ends
	Region    string // default us-east-1
	Endpoint  string // custom endpoint (MinIO, versitygw, …), e.g. http://127.0.0.1:7070
	PathStyle bool
	// MultipartThreshold: objects larger than this are uploaded in parts
	// of PartSize bytes (defaults 64 MiB and 32 MiB; S3 wants parts of at
	// least 5 MiB).
	MultipartThreshold int64
	PartSize           int64
	// Credentials overrides the default credential chain (tests).
	Credentials aws.CredentialsProvider
	// MaxConns bounds connections to the endpoint (default 64).
	MaxConns int
	// Log receives the SDK's own log lines (such as "falling back to
	// IMDSv1") at debug level; nil drops them, so they never reach stderr.
	Log *slog.Logger
}

// Backend is a remote in an S3 bucket. Every PUT carries
// x-amz-checksum-sha256, which the server checks, and If-None-Match: *,
// so an existing object is never replaced. Retries are left to
// cas.WithRetry.
type Backend struct {
	c      *awss3.Client
	cfg    Config
	direct *direct // GET and HEAD without the SDK's middleware; nil: SDK
}

// New opens an S3 remote using the default credential chain (env,
// shared config and credentials files, SSO, IMDS, …).
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 remote: no bucket")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = defaultPartSize
	}
	if cfg.MultipartThreshold <= 0 {
		cfg.MultipartThreshold = defaultThreshold
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	// A BuildableClient (not a plain *http.Client), so that AWS_CA_BUNDLE
	// and other transport settings of the SDK still apply.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = cfg.MaxConns
		tr.MaxIdleConnsPerHost = cfg.MaxConns
	})
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithHTTPClient(hc),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithLogger(sdkLogger(cfg.Log)),
	}
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	ac, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, redact.Error(fmt.Errorf("s3 remote: %w", err))
	}
	if ac.Credentials != nil {
		ac.Credentials = aws.NewCredentialsCache(credentialsSource{ac.Credentials})
	}
	c := awss3.NewFromConfig(ac, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Checksums are sent explicitly (SHA-256) and verified by
		// WithVerify on reads.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &Backend{c: c, cfg: cfg, direct: newDirect(ctx, ac, c.Options(), cfg.Bucket)}, nil
}

func (b *Backend) String() string {
	s := "s3://" + b.cfg.Bucket
	if b.cfg.Prefix != "" {
		s += "/" + b.cfg.Prefix
	}
	return s
}

func (b *Backend) key(k string) string {
	if b.cfg.Prefix == "" {
		return k
	}
	return b.cfg.Prefix + "/" + k
}

func (b *Backend) Stat(ctx context.Context, key string) (int64, error) {
	if b.direct != nil {
		resp, err := b.direct.do(ctx, http.MethodHead, b.key(key))
		if err != nil {
			return 0, b.err(ctx, key, err)
		}
		resp.Body.Close()
		return resp.ContentLength, nil
	}
	out, err := b.c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.key(key))})
	if err != nil {
		return 0, b.err(ctx, key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if b.direct != nil {
		resp, err := b.direct.do(ctx, http.MethodGet, b.key(key))
		if err != nil {
			return nil, b.err(ctx, key, err)
		}
		return resp.Body, nil
	}
	out, err := b.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.key(key))})
	if err != nil {
		return nil, b.err(ctx, key, err)
	}
	return out.Body, nil
}

func b64(sum []byte) *string { return aws.String(base64.StdEncoding.EncodeToString(sum)) }

func (b *Backend) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, sum [sha256.Size]byte) error {
	if size > b.cfg.MultipartThreshold {
		return b.putMultipart(ctx, key, body, size, sum)
	}
	_, err := b.c.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:         &b.cfg.Bucket,
		Key:            aws.String(b.key(key)),
		Body:           io.NewSectionReader(readerAt{body}, 0, size),
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: b64(sum[:]),
		IfNoneMatch:    aws.String("*"),
	}, signedWith(sum))
	return b.err(ctx, key, err)
}

// signedWith gives the SigV4 signer the SHA-256 of the body, which the
// caller already knows (objects are named by it), so the SDK does not
// read and hash every body a second time. Were the body different, the
// server would refuse it: its signature and x-amz-checksum-sha256 would
// not match.
func signedWith(sum [sha256.Size]byte) func(*awss3.Options) {
	hash := hex.EncodeToString(sum[:])
	return awss3.WithAPIOptions(func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("medcadPayloadHash",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				return next.HandleFinalize(v4.SetPayloadHash(ctx, hash), in)
			}), "ComputePayloadHash", middleware.Before)
	})
}

// readerAt adapts a ReadSeeker for sequential use by a SectionReader,
// which gives the SDK a seekable body of exactly size bytes.
type readerAt struct{ rs io.ReadSeeker }

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := r.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(r.rs, p)
}

// putMultipart uploads a large object in parts. The upload is created
// with the SHA-256 checksum algorithm and every part carries its own
// SHA-256 (servers refuse part checksums of another algorithm). The whole
// body is hashed first, so a body that does not match sum never leaves.
func (b *Backend) putMultipart(ctx context.Context, key string, body io.ReadSeeker, size int64, sum [sha256.Size]byte) error {
	if _, err := b.Stat(ctx, key); err == nil {
		return fmt.Errorf("%s: %w", key, cas.ErrExists)
	}
	h := sha256.New()
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if n, err := io.Copy(h, cas.ContextReader(ctx, io.LimitReader(body, size+1))); err != nil {
		return err
	} else if n != size || [sha256.Size]byte(h.Sum(nil)) != sum {
		return fmt.Errorf("put %s: %w", key, cas.ErrCorrupt)
	}
	k := aws.String(b.key(key))
	up, err := b.c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket: &b.cfg.Bucket, Key: k, ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		return b.err(ctx, key, err)
	}
	abort := func(err error) error {
		// A fresh context: the upload must be aborted even after cancel.
		b.c.AbortMultipartUpload(context.WithoutCancel(ctx), &awss3.AbortMultipartUploadInput{Bucket: &b.cfg.Bucket, Key: k, UploadId: up.UploadId})
		return err
	}
	nparts := int((size + b.cfg.PartSize - 1) / b.cfg.PartSize)
	parts := make([]types.CompletedPart, nparts)
	var mu sync.Mutex // guards body for readers that are not ReaderAt
	ra, ok := body.(io.ReaderAt)
	if !ok {
		ra = lockedReaderAt{rs: body, mu: &mu}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partJobs)
	for i := range nparts {
		g.Go(func() error { return b.putPart(gctx, key, ra, up.UploadId, i, size, parts) })
	}
	if err := g.Wait(); err != nil {
		return abort(err)
	}
	_, err = b.c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: &b.cfg.Bucket, Key: k, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		return abort(b.err(ctx, key, err))
	}
	return nil
}

// putPart uploads part i (from 0) of an object of size bytes read from
// ra, and records it in parts.
func (b *Backend) putPart(ctx context.Context, key string, ra io.ReaderAt, upload *string, i int, size int64, parts []types.CompletedPart) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	off := int64(i) * b.cfg.PartSize
	n := min(b.cfg.PartSize, size-off)
	buf := make([]byte, n)
	if _, err := ra.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	ps := sha256.Sum256(buf)
	out, err := b.c.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket: &b.cfg.Bucket, Key: aws.String(b.key(key)), UploadId: upload,
		PartNumber:     aws.Int32(int32(i + 1)),
		Body:           bytes.NewReader(buf),
		ContentLength:  aws.Int64(n),
		ChecksumSHA256: b64(ps[:]),
	}, signedWith(ps))
	if err != nil {
		return b.err(ctx, key, err)
	}
	parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumSHA256: out.ChecksumSHA256}
	if parts[i].ChecksumSHA256 == nil {
		parts[i].ChecksumSHA256 = b64(ps[:])
	}
	return nil
}

type lockedReaderAt struct {
	rs io.ReadSeeker
	mu *sync.Mutex
}

func (l lockedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return readerAt{l.rs}.ReadAt(p, off)
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	strip := ""
	if b.cfg.Prefix != "" {
		strip = b.cfg.Prefix + "/"
	}
	p := awss3.NewListObjectsV2Paginator(b.c, &awss3.ListObjectsV2Input{Bucket: &b.cfg.Bucket, Prefix: aws.String(b.key(prefix))})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return b.err(ctx, prefix, err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), strip)
			if err := fn(k, aws.ToInt64(o.Size)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	_, err := b.c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(b.key(key))})
	return b.err(ctx, key, err)
}

// err translates errors of the SDK and of direct requests to the cas
// sentinel errors.
func (b *Backend) err(ctx context.Context, key string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *credentialsError
	if errors.As(err, &ce) {
		// Not transient: ErrPermission is not retried. The chain's
		// attempts (env, files, SSO, IMDS, …) are for --debug.
		return fmt.Errorf("%s: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE; run with --debug for the providers tried): %w", b, cas.ErrPermission)
	}
	status, code := statusOf(err)
	var sentinel error
	switch {
	case code == "InvalidAccessKeyId" || code == "XAdminUserNotFound":
		// versitygw answers an unknown key with 404 XAdminUserNotFound.
		sentinel = cas.ErrPermission
	case code == "NoSuchKey" || code == "NotFound" || (status == http.StatusNotFound && code != "NoSuchBucket"):
		sentinel = cas.ErrNotFound
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed":
		sentinel = cas.ErrExists
	case code == "BadDigest" || code == "XAmzContentSHA256Mismatch" || code == "InvalidDigest":
		sentinel = cas.ErrCorrupt
	case code == "SlowDown" || code == "Throttling" || code == "RequestLimitExceeded" || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		sentinel = cas.ErrThrottled
	case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || status == http.StatusForbidden:
		sentinel = cas.ErrPermission
	case code == "NoSuchBucket":
		return fmt.Errorf("%s: bucket %q does not exist: %w", b, b.cfg.Bucket, cas.ErrUnsupported)
	}
	// Servers echo requests (a SignatureDoesNotMatch answer quotes the
	// canonical request, session token included): the message is redacted.
	if sentinel == nil {
		return redact.Error(fmt.Errorf("%s %s: %w", b, key, err))
	}
	return redact.Error(fmt.Errorf("%s %s: %w (%s)", b, key, sentinel, oneLine(err.Error())))
}

// statusOf returns the HTTP status and S3 error code of err, the one
// translation for both client paths: SDK errors carry them as
// *awshttp.ResponseError and smithy.APIError, and a direct request's
// *statusError implements the same two methods.
func statusOf(err error) (status int, code string) {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// credentialsSource marks the errors of the credential chain, so that
// Backend.err tells "no credentials" from an answer of the server (the
// chain's errors can carry an HTTP status of their own, IMDS's 404).
type credentialsSource struct{ p aws.CredentialsProvider }

func (c credentialsSource) Retrieve(ctx context.Context) (aws.Credentials, error) {
	v, err := c.p.Retrieve(ctx)
	if err != nil {
		return v, &credentialsError{err}
	}
	return v, nil
}

type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "get AWS credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// sdkLogger sends the SDK's log lines to log at debug level, or nowhere.
func sdkLogger(log *slog.Logger) logging.Logger {
	if log == nil {
		return logging.Nop{}
	}
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		log.Debug("aws sdk: "+fmt.Sprintf(format, v...), "level", string(c))
	})
}
