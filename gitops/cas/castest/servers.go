package castest

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/medcad/medcad/gitops/cas/s3"
	"github.com/medcad/medcad/internal/testenv"
)

// Versitygw credentials used by the tests.
const (
	AccessKey = "medcad-test-key"
	SecretKey = "medcad-test-secret"
)

// S3Server is an S3 endpoint started for a test.
type S3Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Dir      string // versitygw's posix root ("" for gofakes3)
}

// FakeS3 starts gofakes3 in process. It accepts any credentials.
func FakeS3(t testing.TB) *S3Server {
	t.Helper()
	faker := gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true))
	ts := httptest.NewServer(faker.Server())
	t.Cleanup(ts.Close)
	return &S3Server{Endpoint: ts.URL}
}

// Versitygw starts versitygw v1.8.0 (a real S3 server that checks SigV4)
// on a free loopback port with a posix root in a temporary folder. It
// skips, or fails under MEDCAD_REQUIRE_SERVERS=1, when not installed.
func Versitygw(t testing.TB) *S3Server {
	t.Helper()
	bin := testenv.LookPath(t, "versitygw")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--port", addr, "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw did not listen on %s: %s", addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &S3Server{Endpoint: "http://" + addr, Dir: root}
}

// Credentials for the test servers.
func Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")
}

// NewBucket creates a bucket with a unique name on the server and returns
// an S3 backend for it, with a small multipart threshold (5 MiB parts).
func (s *S3Server) NewBucket(t testing.TB) (*s3.Backend, string) {
	t.Helper()
	ctx := context.Background()
	name := "b" + strconv.FormatInt(time.Now().UnixNano(), 36)
	c := awss3.New(awss3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: Credentials(),
	})
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	b, err := s3.New(ctx, s3.Config{
		Bucket: name, Prefix: "store", Endpoint: s.Endpoint, PathStyle: true,
		Credentials: Credentials(), MultipartThreshold: 6 << 20, PartSize: 5 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, name
}
