package release

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RefNameAnnotation names an index in an OCI layout's index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// WriteLayout writes idx as the only index of a fresh OCI layout in dir
// (what was there is removed), named refName, and returns its digest.
func WriteLayout(dir string, idx v1.ImageIndex, refName string) (v1.Hash, error) {
	digest, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("failed to compute the index digest: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, fmt.Errorf("failed to remove the old layout %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("failed to create the OCI layout %s: %w", dir, err)
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{RefNameAnnotation: refName}))
	}
	if err := p.AppendIndex(idx, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("failed to write the index to %s: %w", dir, err)
	}
	return digest, nil
}

// IndexFromLayout reads back the image index that WriteLayout wrote to dir.
func IndexFromLayout(dir string) (v1.ImageIndex, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to read the OCI layout %s: %w", dir, err)
	}
	manifest, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("failed to read the index.json of %s: %w", dir, err)
	}
	var found []v1.Descriptor
	for _, desc := range manifest.Manifests {
		if desc.MediaType.IsIndex() {
			found = append(found, desc)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("failed to find the image index in %s: want one, found %d", dir, len(found))
	}
	idx, err := top.ImageIndex(found[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("failed to read the image index %s from %s: %w", found[0].Digest, dir, err)
	}
	return idx, nil
}

// PushIndex pushes idx, with all its images, to ref (registry/repo:tag) with
// the credentials of the default keychain (docker's config.json, as docker
// login and crane auth write it) and returns the pushed digest. opts come
// after the defaults, so a caller can replace the auth or the transport.
func PushIndex(ctx context.Context, idx v1.ImageIndex, ref string, opts ...remote.Option) (name.Digest, error) {
	tag, err := name.ParseReference(ref)
	if err != nil {
		return name.Digest{}, fmt.Errorf("failed to parse the image reference %q: %w", ref, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("failed to compute the index digest: %w", err)
	}
	all := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.WriteIndex(tag, idx, all...); err != nil {
		return name.Digest{}, fmt.Errorf("failed to push the image index to %s: %w", ref, err)
	}
	return tag.Context().Digest(digest.String()), nil
}

// PlatformSize is what a node pulls for one platform: the manifest, the
// config and the compressed layers.
type PlatformSize struct {
	Platform   v1.Platform
	Compressed int64
}

// Sizes lists the compressed size of each platform's image in idx.
func Sizes(idx v1.ImageIndex) ([]PlatformSize, error) {
	manifest, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("failed to read the index manifest: %w", err)
	}
	var sizes []PlatformSize
	for _, desc := range manifest.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("failed to read the image %s: %w", desc.Digest, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, fmt.Errorf("failed to read the manifest of %s: %w", desc.Digest, err)
		}
		total := desc.Size + m.Config.Size
		for _, l := range m.Layers {
			total += l.Size
		}
		size := PlatformSize{Compressed: total}
		if desc.Platform != nil {
			size.Platform = *desc.Platform
		}
		sizes = append(sizes, size)
	}
	return sizes, nil
}
