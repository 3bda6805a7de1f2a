package shopifytest

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// What a merchant does in the Shopify admin while the app works on a product: tests use these
// to change a gallery between the app's reads and writes.

// LinkVariant links a variant to a media of its product (mediaID "" unlinks it), as the admin's
// variant image picker does: the variant's previous image link is replaced.
func (s *Store) LinkVariant(shop, productID, variantID, mediaID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.productLocked(shop, productID)
	if err != nil {
		return err
	}
	vid, _ := parseGID(variantID, "ProductVariant")
	var v *variant
	for _, x := range p.variants {
		if x.id == vid {
			v = x
		}
	}
	if v == nil {
		return fmt.Errorf("shopifytest: no variant %s on %s", variantID, productID)
	}
	if mediaID == "" {
		v.media = nil
	} else {
		mid, err := mediaOn(p, productID, mediaID)
		if err != nil {
			return err
		}
		v.media = []int64{mid}
	}
	p.updatedAt = s.opts.Now()
	return nil
}

// SetAlt changes a media's alt text; like the admin, it refuses more than 512 characters.
func (s *Store) SetAlt(shop, mediaID, alt string) error {
	if tooLong(alt, maxAlt) {
		return fmt.Errorf("shopifytest: alt text of %d characters is over Shopify's %d", utf8.RuneCountInString(alt), maxAlt)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.fileLocked(shop, mediaID)
	if err != nil {
		return err
	}
	f.alt = alt
	f.updatedAt = s.opts.Now()
	return nil
}

// MoveMedia puts a media of the product at a 0-based position.
func (s *Store) MoveMedia(shop, productID, mediaID string, pos int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.productLocked(shop, productID)
	if err != nil {
		return err
	}
	mid, err := mediaOn(p, productID, mediaID)
	if err != nil {
		return err
	}
	p.media = removeID(p.media, mid)
	p.media = slices.Insert(p.media, min(pos, len(p.media)), mid)
	p.updatedAt = s.opts.Now()
	return nil
}

// DeleteMedia deletes a media from the product and from Files, as deleting a product image in
// the admin does; its variant links go with it.
func (s *Store) DeleteMedia(shop, productID, mediaID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.productLocked(shop, productID)
	if err != nil {
		return err
	}
	mid, err := mediaOn(p, productID, mediaID)
	if err != nil {
		return err
	}
	sh := s.shops[shop]
	for _, q := range sh.productOf(mid) {
		q.media = removeID(q.media, mid)
		for _, v := range q.variants {
			v.media = removeID(v.media, mid)
		}
		q.updatedAt = s.opts.Now()
	}
	sh.files[mid].gen++
	delete(sh.files, mid)
	return nil
}

func (s *Store) fileLocked(shop, mediaID string) (*file, error) {
	sh := s.shops[shop]
	if sh == nil {
		return nil, fmt.Errorf("shopifytest: unknown shop %s", shop)
	}
	id, _ := parseGID(mediaID, "MediaImage")
	f := sh.files[id]
	if f == nil {
		return nil, fmt.Errorf("shopifytest: unknown file %s in %s", mediaID, shop)
	}
	return f, nil
}

// LockNextDetach makes the next n fileUpdate calls that remove a file from a product answer
// FILE_LOCKED ("File has a pending operation"), as Shopify does while another change to the file
// is under way.
func (s *Store) LockNextDetach(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lockNext += n
}

// mediaOn is the numeric id of a media of the product, or an error naming
// both when the media is not on it.
func mediaOn(p *product, productID, mediaID string) (int64, error) {
	mid, _ := parseGID(mediaID, "MediaImage")
	if !slices.Contains(p.media, mid) {
		return 0, fmt.Errorf("shopifytest: media %s is not on %s", mediaID, productID)
	}
	return mid, nil
}
