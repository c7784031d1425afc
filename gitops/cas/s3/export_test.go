package s3

// SDKReads returns a copy of b whose GET and HEAD go through the SDK.
func SDKReads(b *Backend) *Backend {
	c := *b
	c.direct = nil
	return &c
}
