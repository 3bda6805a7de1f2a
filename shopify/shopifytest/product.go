package shopifytest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type variantRef struct {
	p *product
	v *variant
}

func addProductResolvers() {
	pr := func(f func(p *product, args map[string]any) (any, error)) resolver {
		return func(_ *exec, parent any, args map[string]any) (any, error) { return f(parent.(*product), args) }
	}
	resolvers["Product.id"] = pr(func(p *product, _ map[string]any) (any, error) { return gid("Product", p.id), nil })
	resolvers["Product.legacyResourceId"] = pr(func(p *product, _ map[string]any) (any, error) { return fmt.Sprint(p.id), nil })
	resolvers["Product.title"] = pr(func(p *product, _ map[string]any) (any, error) { return p.title, nil })
	resolvers["Product.handle"] = pr(func(p *product, _ map[string]any) (any, error) {
		return strings.ToLower(strings.Join(strings.Fields(p.title), "-")), nil
	})
	resolvers["Product.productType"] = pr(func(p *product, _ map[string]any) (any, error) { return p.productType, nil })
	resolvers["Product.vendor"] = pr(func(p *product, _ map[string]any) (any, error) { return p.vendor, nil })
	resolvers["Product.status"] = pr(func(p *product, _ map[string]any) (any, error) { return p.status, nil })
	resolvers["Product.tags"] = pr(func(p *product, _ map[string]any) (any, error) { return append([]string{}, p.tags...), nil })
	resolvers["Product.createdAt"] = pr(func(p *product, _ map[string]any) (any, error) { return p.createdAt, nil })
	resolvers["Product.updatedAt"] = pr(func(p *product, _ map[string]any) (any, error) { return p.updatedAt, nil })
	resolvers["Product.media"] = func(e *exec, parent any, args map[string]any) (any, error) {
		p := parent.(*product)
		if sk, _ := argStr(args, "sortKey"); sk != "POSITION" {
			return nil, fmt.Errorf("shopifytest: Product.media sortKey %s is not supported", sk)
		}
		media := p.media
		if q, _ := argStr(args, "query"); q != "" {
			// Product.media's query argument, as the 2026-10 schema
			// documents it: the filter "id:1234" (terms joined by OR, as
			// Shopify's API search syntax allows) keeps those media that are
			// on the product, in order. Every other filter (media_type, id
			// ranges) is refused here, not guessed at.
			var want []int64
			for _, term := range strings.Split(strings.TrimSpace(q), " OR ") {
				m := mediaIDQuery.FindStringSubmatch(strings.TrimSpace(term))
				if m == nil {
					return nil, fmt.Errorf("shopifytest: Product.media query %q is not supported (only id:<number> terms joined by OR)", q)
				}
				id, _ := strconv.ParseInt(m[1], 10, 64)
				want = append(want, id)
			}
			media = slices.DeleteFunc(slices.Clone(p.media), func(id int64) bool { return !slices.Contains(want, id) })
		}
		return paginate("Media", e.mediaItems(media), args)
	}
	resolvers["Product.featuredMedia"] = func(e *exec, parent any, _ map[string]any) (any, error) {
		p := parent.(*product)
		if len(p.media) == 0 {
			return nil, nil
		}
		return obj{"MediaImage", e.sh.files[p.media[0]]}, nil
	}
	resolvers["Product.variants"] = func(_ *exec, parent any, args map[string]any) (any, error) {
		p := parent.(*product)
		if sk, _ := argStr(args, "sortKey"); sk != "POSITION" {
			return nil, fmt.Errorf("shopifytest: Product.variants sortKey %s is not supported", sk)
		}
		items := make([]item, len(p.variants))
		for i, v := range p.variants {
			items[i] = item{key: fmt.Sprintf("%010d", i), id: v.id, o: obj{"ProductVariant", variantRef{p, v}}}
		}
		return paginate("ProductVariant", items, args)
	}

	vr := func(f func(r variantRef, args map[string]any) (any, error)) resolver {
		return func(_ *exec, parent any, args map[string]any) (any, error) { return f(parent.(variantRef), args) }
	}
	resolvers["ProductVariant.id"] = vr(func(r variantRef, _ map[string]any) (any, error) { return gid("ProductVariant", r.v.id), nil })
	resolvers["ProductVariant.title"] = vr(func(r variantRef, _ map[string]any) (any, error) { return r.v.title, nil })
	resolvers["ProductVariant.product"] = vr(func(r variantRef, _ map[string]any) (any, error) { return obj{"Product", r.p}, nil })
	resolvers["ProductVariant.media"] = func(e *exec, parent any, args map[string]any) (any, error) {
		return paginate("Media", e.mediaItems(parent.(variantRef).v.media), args)
	}
}

var mediaIDQuery = regexp.MustCompile(`^id:\s*(\d{1,18})$`)

// mediaItems lists media in position order for a connection.
func (e *exec) mediaItems(ids []int64) []item {
	items := make([]item, 0, len(ids))
	for i, id := range ids {
		if f := e.sh.files[id]; f != nil {
			items = append(items, item{key: fmt.Sprintf("%010d", i), id: id, o: obj{"MediaImage", f}})
		}
	}
	return items
}

func addMediaResolvers() {
	fr := func(f func(x *file, args map[string]any) (any, error)) resolver {
		return func(_ *exec, parent any, args map[string]any) (any, error) { return f(parent.(*file), args) }
	}
	resolvers["MediaImage.id"] = fr(func(x *file, _ map[string]any) (any, error) { return gid("MediaImage", x.id), nil })
	resolvers["MediaImage.alt"] = fr(func(x *file, _ map[string]any) (any, error) { return x.alt, nil })
	resolvers["MediaImage.status"] = fr(func(x *file, _ map[string]any) (any, error) { return x.status, nil })
	resolvers["MediaImage.fileStatus"] = fr(func(x *file, _ map[string]any) (any, error) { return x.status, nil })
	resolvers["MediaImage.mediaContentType"] = fr(func(*file, map[string]any) (any, error) { return "IMAGE", nil })
	resolvers["MediaImage.createdAt"] = fr(func(x *file, _ map[string]any) (any, error) { return x.createdAt, nil })
	resolvers["MediaImage.updatedAt"] = fr(func(x *file, _ map[string]any) (any, error) { return x.updatedAt, nil })
	resolvers["MediaImage.mimeType"] = fr(func(x *file, _ map[string]any) (any, error) {
		if x.status != "READY" {
			return nil, nil
		}
		return x.mime, nil
	})
	image := func(e *exec, parent any, _ map[string]any) (any, error) {
		x := parent.(*file)
		if x.status != "READY" { // Shopify: image is null until the media is READY
			return nil, nil
		}
		return obj{"Image", x}, nil
	}
	resolvers["MediaImage.image"] = image
	resolvers["MediaImage.preview"] = func(_ *exec, parent any, _ map[string]any) (any, error) {
		return obj{"MediaPreviewImage", parent}, nil
	}
	resolvers["MediaPreviewImage.image"] = image
	resolvers["MediaPreviewImage.status"] = fr(func(x *file, _ map[string]any) (any, error) { return x.status, nil })
	errorsOf := func(typ string) resolver {
		return fr(func(x *file, _ map[string]any) (any, error) {
			if x.status != "FAILED" {
				return []obj{}, nil
			}
			return []obj{{typ, fields{"code": x.errCode, "message": x.errMsg, "details": x.errMsg}}}, nil
		})
	}
	resolvers["MediaImage.fileErrors"] = errorsOf("FileError")
	resolvers["MediaImage.mediaErrors"] = errorsOf("MediaError")
	resolvers["MediaImage.mediaWarnings"] = fr(func(*file, map[string]any) (any, error) { return []obj{}, nil })

	resolvers["Image.url"] = func(e *exec, parent any, args map[string]any) (any, error) {
		if args["transform"] != nil {
			return nil, fmt.Errorf("shopifytest: Image.url transform is not supported")
		}
		x := parent.(*file)
		return e.s.cdnURL(e.sh, x), nil
	}
	resolvers["Image.altText"] = fr(func(x *file, _ map[string]any) (any, error) { return x.alt, nil })
	resolvers["Image.width"] = fr(func(x *file, _ map[string]any) (any, error) { return x.width, nil })
	resolvers["Image.height"] = fr(func(x *file, _ map[string]any) (any, error) { return x.height, nil })
	resolvers["Image.id"] = fr(func(x *file, _ map[string]any) (any, error) { return gid("ImageSource", x.id), nil })
}
