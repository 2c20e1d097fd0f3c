// Package s3store is the blobstore.Store on S3: AWS S3, MinIO or Ceph RGW.
//
// The caller builds the *s3.Client (endpoint, region, path style, the standard AWS
// credential chain, the SDK's retries) and passes it in, as gocloud's s3blob does.
//
// Each blob is one object, prefix + name. Put sends the body with its SHA-256
// (x-amz-checksum-sha256, which the server verifies) and keeps the hex digest in the
// object's metadata, so Get can check it on every backend. Conditions map to
// If-None-Match: * and If-Match: "etag"; a write is acknowledged only on S3's 200.
package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sharevault/sharevault/internal/blobstore"
)

const metaSHA256 = "sha256" // x-amz-meta-sha256: hex SHA-256 of the content

// Store is a blobstore.Store on one bucket, under a key prefix.
type Store struct {
	client *s3.Client
	bucket string
	prefix string
}

var _ blobstore.Store = (*Store)(nil)

// New returns a store on bucket, with every key under prefix (empty, or ending in "/").
func New(client *s3.Client, bucket, prefix string) (*Store, error) {
	if bucket == "" {
		return nil, errors.New("s3store: no bucket")
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{client: client, bucket: bucket, prefix: prefix}, nil
}

// mapErr maps an S3 error onto the blobstore sentinels, as gocloud's s3blob ErrorCode does.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var sentinel error
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			sentinel = blobstore.ErrNotFound
		case "PreconditionFailed", "ConditionalRequestConflict":
			sentinel = blobstore.ErrPreconditionFailed
		case "BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch":
			sentinel = blobstore.ErrCorrupt
		case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "XMinioServerNotInitialized":
			sentinel = blobstore.ErrUnavailable
		}
	}
	var re *awshttp.ResponseError
	var sendErr *smithyhttp.RequestSendError
	if sentinel == nil && errors.As(err, &sendErr) {
		sentinel = blobstore.ErrUnavailable // the request never got an answer: refused, reset, timed out
	}
	if sentinel == nil && errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == 0:
			sentinel = blobstore.ErrUnavailable // no HTTP answer at all
		case code == http.StatusNotFound:
			sentinel = blobstore.ErrNotFound
		case code == http.StatusPreconditionFailed || code == http.StatusConflict:
			sentinel = blobstore.ErrPreconditionFailed
		case code >= 500:
			sentinel = blobstore.ErrUnavailable
		}
	}
	if sentinel == nil && re == nil && ae == nil {
		sentinel = blobstore.ErrUnavailable // no answer at all: refused, reset, timed out
	}
	if sentinel == nil {
		return fmt.Errorf("s3store: %s: %w", op, err)
	}
	return fmt.Errorf("%w: s3 %s: %v", sentinel, op, err)
}

func quote(etag string) string { return `"` + etag + `"` }

func unquote(etag *string) string { return strings.Trim(aws.ToString(etag), `"`) }

// Put implements blobstore.Store.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64, cond blobstore.Condition) (blobstore.Attrs, error) {
	data, sum, err := blobstore.PreparePut(ctx, name, r, size, cond)
	if err != nil {
		return blobstore.Attrs{}, err
	}
	in := &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            aws.String(s.prefix + name),
		Body:           bytes.NewReader(data),
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		Metadata:       map[string]string{metaSHA256: hex.EncodeToString(sum[:])},
	}
	if cond.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if cond.IfMatch != "" {
		in.IfMatch = aws.String(quote(cond.IfMatch))
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		err = mapErr("put", err)
		if cond.IfMatch != "" && errors.Is(err, blobstore.ErrNotFound) {
			// AWS answers If-Match on a missing key with 404: the condition failed.
			return blobstore.Attrs{}, fmt.Errorf("%w (no such blob)", blobstore.ErrPreconditionFailed)
		}
		return blobstore.Attrs{}, err
	}
	return blobstore.Attrs{Name: name, Size: size, ETag: unquote(out.ETag), SHA256: sum, Modified: time.Now().UTC()}, nil
}

func attrs(name string, size *int64, etag *string, modified *time.Time, meta map[string]string) (blobstore.Attrs, error) {
	a := blobstore.Attrs{Name: name, Size: aws.ToInt64(size), ETag: unquote(etag), Modified: aws.ToTime(modified).UTC()}
	if b, err := hex.DecodeString(meta[metaSHA256]); err == nil && len(b) == 32 {
		copy(a.SHA256[:], b)
		return a, nil
	}
	return a, fmt.Errorf("%w: %s has no sha256 metadata", blobstore.ErrCorrupt, name)
}

// Get implements blobstore.Store. The SHA-256 is checked as the stream ends.
func (s *Store) Get(ctx context.Context, name string) (*blobstore.Reader, error) {
	if err := blobstore.ValidName(name); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + name)})
	if err != nil {
		return nil, mapErr("get", err)
	}
	a, err := attrs(name, out.ContentLength, out.ETag, out.LastModified, out.Metadata)
	if err != nil {
		out.Body.Close()
		return nil, err
	}
	return &blobstore.Reader{Attrs: a, ReadCloser: blobstore.NewVerifyingReader(out.Body, a.Size, a.SHA256)}, nil
}

// Stat implements blobstore.Store.
func (s *Store) Stat(ctx context.Context, name string) (blobstore.Attrs, error) {
	if err := blobstore.ValidName(name); err != nil {
		return blobstore.Attrs{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + name)})
	if err != nil {
		return blobstore.Attrs{}, mapErr("stat", err)
	}
	return attrs(name, out.ContentLength, out.ETag, out.LastModified, out.Metadata)
}

// List implements blobstore.Store with one ListObjectsV2 call.
func (s *Store) List(ctx context.Context, prefix, after string, limit int) ([]blobstore.Attrs, bool, error) {
	if limit < 1 || limit > 1000 {
		return nil, false, errors.New("s3store: list limit must be 1 to 1000")
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + prefix), MaxKeys: aws.Int32(int32(limit))}
	if after != "" {
		in.StartAfter = aws.String(s.prefix + after)
	}
	out, err := s.client.ListObjectsV2(ctx, in)
	if err != nil {
		return nil, false, mapErr("list", err)
	}
	page := make([]blobstore.Attrs, 0, len(out.Contents))
	for _, o := range out.Contents {
		page = append(page, blobstore.Attrs{Name: strings.TrimPrefix(aws.ToString(o.Key), s.prefix),
			Size: aws.ToInt64(o.Size), ETag: unquote(o.ETag), Modified: aws.ToTime(o.LastModified).UTC()})
	}
	return page, aws.ToBool(out.IsTruncated), nil
}

// Delete implements blobstore.Store: a HEAD for not-found, then the DELETE.
func (s *Store) Delete(ctx context.Context, name string) error {
	if _, err := s.Stat(ctx, name); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + name)})
	return mapErr("delete", err)
}

// Close implements blobstore.Store; the caller owns the client.
func (s *Store) Close() error { return nil }
