package s3store

import (
	"testing"

	"github.com/sharevault/sharevault/internal/blobstore"
	"github.com/sharevault/sharevault/internal/blobstore/blobstoretest"
	"github.com/sharevault/sharevault/internal/miniotest"
)

// TestConformance runs the suite against a real MinIO process.
func TestConformance(t *testing.T) {
	m := miniotest.Start(t)
	client := m.Client()
	blobstoretest.Run(t, func(t *testing.T) blobstore.Store {
		s, err := New(client, m.NewBucket(t), "vault/")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func BenchmarkS3MinIO(b *testing.B) {
	m := miniotest.Start(b)
	s, err := New(m.Client(), m.NewBucket(b), "")
	if err != nil {
		b.Fatal(err)
	}
	blobstoretest.Bench(b, s)
}
