package shopifytest

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Mutations validate every input before changing anything, so a request with user errors leaves
// the store untouched, as Shopify does for these mutations.

// Shopify's limits. A product holds at most 250 media. Text limits count characters (Unicode
// code points, as utf8mb4 stores them), not bytes: a 512-character CJK or emoji alt text is
// accepted, a 513-character one refused.
const (
	maxProductMedia = 250
	maxAlt          = 512 // alt text of a file or media (ALT_VALUE_LIMIT_EXCEEDED)
	maxTitle        = 255 // product title ("Title is too long (maximum is 255 characters)")
)

func tooLong(s string, limit int) bool { return utf8.RuneCountInString(s) > limit }

func userErr(typ, code, msg string, field ...any) obj {
	fs := make([]string, len(field))
	for i, f := range field {
		fs[i] = fmt.Sprint(f)
	}
	m := fields{"field": fs, "message": msg}
	if typ != "UserError" {
		if code == "" {
			m["code"] = nil
		} else {
			m["code"] = code
		}
	}
	return obj{typ, m}
}

func addMutationResolvers() {
	resolvers["Mutation.stagedUploadsCreate"] = mutStagedUploadsCreate
	resolvers["Mutation.fileCreate"] = mutFileCreate
	resolvers["Mutation.fileUpdate"] = mutFileUpdate
	resolvers["Mutation.fileDelete"] = mutFileDelete
	resolvers["Mutation.productUpdate"] = mutProductUpdate
	resolvers["Mutation.productReorderMedia"] = mutProductReorderMedia
	resolvers["Mutation.productVariantAppendMedia"] = mutVariantMedia(true)
	resolvers["Mutation.productVariantDetachMedia"] = mutVariantMedia(false)
}

// sourceFilename is the filename Shopify derives from an originalSource URL.
func sourceFilename(src string) string {
	u, err := url.Parse(src)
	if err != nil {
		return ""
	}
	name, err := url.PathUnescape(path.Base(u.Path))
	if err != nil || name == "/" || name == "." {
		return ""
	}
	return name
}

func validSourceURL(src string) bool {
	u, err := url.Parse(src)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".webp": true, ".heic": true}

// uniqueName applies APPEND_UUID: name_uuid.ext when the name is taken.
func (sh *shopState) uniqueName(name string) string {
	if sh.fileByName(name) == nil {
		return name
	}
	e := path.Ext(name)
	return strings.TrimSuffix(name, e) + "_" + uuid.NewString() + e
}

func mutFileCreate(e *exec, _ any, args map[string]any) (any, error) {
	inputs := argList(args["files"])
	var errs []obj
	type plan struct {
		name, src, alt string
		replace        *file
	}
	plans := make([]plan, len(inputs))
	taken := map[string]bool{}
	for i, raw := range inputs {
		in := argMap(raw)
		src, _ := argStr(in, "originalSource")
		alt, _ := argStr(in, "alt")
		name, hasName := argStr(in, "filename")
		mode, _ := argStr(in, "duplicateResolutionMode")
		ct, _ := argStr(in, "contentType")
		if ct != "" && ct != "IMAGE" {
			return nil, fmt.Errorf("shopifytest: fileCreate contentType %s is not supported (images only)", ct)
		}
		if !validSourceURL(src) {
			errs = append(errs, userErr("FilesUserError", "INVALID_IMAGE_SOURCE_URL", "Image URL is invalid.", "files", i, "originalSource"))
			continue
		}
		srcName := sourceFilename(src)
		if !hasName || name == "" {
			if mode == "REPLACE" {
				errs = append(errs, userErr("FilesUserError", "MISSING_FILENAME_FOR_DUPLICATE_MODE_REPLACE", "Filename is required for REPLACE mode.", "files", i, "filename"))
				continue
			}
			name = srcName
		}
		if ct == "" && !imageExts[strings.ToLower(ext(name))] {
			return nil, fmt.Errorf("shopifytest: fileCreate of non-image %q is not supported", name)
		}
		// Shopify: a custom filename must keep the original source's extension, exactly
		// (MISMATCHED_FILENAME_AND_ORIGINAL_SOURCE).
		if ext(srcName) != "" && ext(name) != ext(srcName) {
			errs = append(errs, userErr("FilesUserError", "MISMATCHED_FILENAME_AND_ORIGINAL_SOURCE",
				"Cannot create file with custom filename which does not match original source extension.", "files", i, "filename"))
			continue
		}
		if tooLong(alt, maxAlt) {
			errs = append(errs, userErr("FilesUserError", "ALT_VALUE_LIMIT_EXCEEDED", "The alt value exceeds the maximum limit of 512 characters.", "files", i, "alt"))
			continue
		}
		p := plan{name: name, src: src, alt: alt}
		existing := e.sh.fileByName(name)
		switch {
		case mode == "RAISE_ERROR" && (existing != nil || taken[name]):
			errs = append(errs, userErr("FilesUserError", "FILENAME_ALREADY_EXISTS", fmt.Sprintf("Filename %s already exists.", name), "files", i, "filename"))
			continue
		case mode == "REPLACE" && existing != nil:
			p.replace = existing
		}
		taken[name] = true
		plans[i] = p
	}
	if len(errs) > 0 {
		return obj{"FileCreatePayload", fields{"files": nil, "userErrors": errs}}, nil
	}
	out := make([]obj, 0, len(plans))
	for _, p := range plans {
		if p.replace != nil {
			e.s.reprocess(e.sh, p.replace, p.src)
			if p.alt != "" {
				p.replace.alt = p.alt
			}
			out = append(out, obj{"MediaImage", p.replace})
			continue
		}
		f := e.s.newFile(e.sh, e.sh.uniqueName(p.name), p.alt)
		e.s.reprocess(e.sh, f, p.src)
		out = append(out, obj{"MediaImage", f})
	}
	return obj{"FileCreatePayload", fields{"files": out, "userErrors": []obj{}}}, nil
}

func mutFileUpdate(e *exec, _ any, args map[string]any) (any, error) {
	inputs := argList(args["files"])
	var errs []obj
	var apply []func()
	var out []obj
	fe := func(code, msg string, f ...any) { errs = append(errs, userErr("FilesUserError", code, msg, f...)) }
	for i, raw := range inputs {
		in := argMap(raw)
		rawID, _ := argStr(in, "id")
		id, ok := parseGID(rawID, "MediaImage")
		if !ok && strings.HasPrefix(rawID, "gid://shopify/") && !strings.Contains(rawID, "/MediaImage/") {
			return nil, fmt.Errorf("shopifytest: fileUpdate of %q is not supported (MediaImage only)", rawID)
		}
		f := e.sh.files[id]
		if f == nil {
			fe("FILE_DOES_NOT_EXIST", fmt.Sprintf("File id %s does not exist.", rawID), "files", i, "id")
			continue
		}
		// "Files must be in ready state before they can be updated": FAILED included.
		if f.status != "READY" {
			fe("NON_READY_STATE", "The file is not in the READY state.", "files", i, "id")
			continue
		}
		if in["previewImageSource"] != nil {
			fe("INVALID", "previewImageSource is only valid for non-image files.", "files", i, "previewImageSource")
			continue
		}
		src, hasSrc := argStr(in, "originalSource")
		if hasSrc {
			if !validSourceURL(src) {
				fe("INVALID_IMAGE_SOURCE_URL", "Image URL is invalid.", "files", i, "originalSource")
				continue
			}
			// Shopify replaces a file's bytes only from a source with the file's own
			// extension, exactly (".jpeg" is not ".jpg", case counts).
			if ext(sourceFilename(src)) != ext(f.filename) {
				fe("MISMATCHED_FILENAME_AND_ORIGINAL_SOURCE", "The file extension of the new source must match the existing file's extension.", "files", i, "originalSource")
				continue
			}
		}
		name, hasName := argStr(in, "filename")
		if hasName {
			if ext(name) != ext(f.filename) {
				fe("INVALID_FILENAME_EXTENSION", "Invalid filename extension.", "files", i, "filename")
				continue
			}
			if other := e.sh.fileByName(name); other != nil && other != f {
				fe("FILENAME_ALREADY_EXISTS", fmt.Sprintf("Filename %s already exists.", name), "files", i, "filename")
				continue
			}
		}
		alt, hasAlt := argStr(in, "alt")
		if tooLong(alt, maxAlt) {
			fe("ALT_VALUE_LIMIT_EXCEEDED", "The alt value exceeds the maximum limit of 512 characters.", "files", i, "alt")
			continue
		}
		if in["referencesToRemove"] != nil && e.s.lockNext > 0 {
			// Shopify: a file with a pending operation cannot be changed (FILE_LOCKED).
			e.s.lockNext--
			fe("FILE_LOCKED", "File has a pending operation.", "files", i, "id")
			continue
		}
		var addTo, removeFrom []*product
		bad := false
		for _, key := range []string{"referencesToAdd", "referencesToRemove"} {
			for j, ref := range argStrings(in[key]) {
				pid, ok := parseGID(ref, "Product")
				if !ok {
					fe("UNSUPPORTED_FILE_REFERENCE", fmt.Sprintf("Reference %s is not supported.", ref), "files", i, key, j)
					bad = true
					continue
				}
				p := e.sh.products[pid]
				if p == nil {
					fe("REFERENCE_TARGET_DOES_NOT_EXIST", fmt.Sprintf("The reference target %s does not exist.", ref), "files", i, key, j)
					bad = true
					continue
				}
				if key == "referencesToAdd" {
					if !slices.Contains(p.media, f.id) && len(p.media) >= maxProductMedia {
						fe("PRODUCT_MEDIA_LIMIT_EXCEEDED", "The product has reached the media limit.", "files", i, key, j)
						bad = true
					}
					addTo = append(addTo, p)
				} else {
					removeFrom = append(removeFrom, p)
				}
			}
		}
		for _, p := range addTo {
			if slices.Contains(removeFrom, p) {
				fe("INVALID", "A reference cannot be both added and removed.", "files", i)
				bad = true
			}
		}
		if bad {
			continue
		}
		apply = append(apply, func() {
			now := e.s.opts.Now()
			if hasName {
				f.filename = name
			}
			if hasAlt {
				f.alt = alt
			}
			for _, p := range addTo {
				if !slices.Contains(p.media, f.id) {
					p.media = append(p.media, f.id)
					p.updatedAt = now
				}
			}
			for _, p := range removeFrom {
				if slices.Contains(p.media, f.id) {
					p.media = removeID(p.media, f.id)
					for _, v := range p.variants {
						v.media = removeID(v.media, f.id)
					}
					p.updatedAt = now
				}
			}
			if hasSrc {
				// In place: id, filename, position and variant links stay; the bytes are
				// re-fetched and the file goes back through processing.
				e.s.reprocess(e.sh, f, src)
				for _, p := range e.sh.productOf(f.id) {
					p.updatedAt = now
				}
			}
			f.updatedAt = now
		})
		out = append(out, obj{"MediaImage", f})
	}
	if len(errs) > 0 {
		return obj{"FileUpdatePayload", fields{"files": nil, "userErrors": errs}}, nil
	}
	for _, fn := range apply {
		fn()
	}
	return obj{"FileUpdatePayload", fields{"files": out, "userErrors": []obj{}}}, nil
}

// mutFileDelete deletes files; like Shopify, a file on products leaves them (and their
// variants' links) too. Any id that does not exist refuses the whole call.
func mutFileDelete(e *exec, _ any, args map[string]any) (any, error) {
	var ids []int64
	for i, raw := range argStrings(args["fileIds"]) {
		id, ok := parseGID(raw, "MediaImage")
		if !ok || e.sh.files[id] == nil {
			return obj{"FileDeletePayload", fields{"deletedFileIds": nil, "userErrors": []obj{
				userErr("FilesUserError", "FILE_DOES_NOT_EXIST", fmt.Sprintf("File id %s does not exist.", raw), "fileIds", i)}}}, nil
		}
		ids = append(ids, id)
	}
	now := e.s.opts.Now()
	deleted := make([]string, 0, len(ids))
	for _, id := range ids {
		for _, p := range e.sh.productOf(id) {
			p.media = removeID(p.media, id)
			for _, v := range p.variants {
				v.media = removeID(v.media, id)
			}
			p.updatedAt = now
		}
		e.sh.files[id].gen++ // processing in flight must not land
		delete(e.sh.files, id)
		deleted = append(deleted, gid("MediaImage", id))
	}
	return obj{"FileDeletePayload", fields{"deletedFileIds": deleted, "userErrors": []obj{}}}, nil
}

func mutProductUpdate(e *exec, _ any, args map[string]any) (any, error) {
	in := argMap(args["product"])
	rawID, _ := argStr(in, "id")
	for k := range in {
		switch k {
		case "id", "title", "productType", "vendor", "tags", "status":
		default:
			return nil, fmt.Errorf("shopifytest: productUpdate field %s is not supported", k)
		}
	}
	pid, _ := parseGID(rawID, "Product")
	p := e.sh.products[pid]
	if p == nil {
		return obj{"ProductUpdatePayload", fields{"product": nil, "userErrors": []obj{userErr("UserError", "", "Product does not exist", "id")}}}, nil
	}
	media := argList(args["media"])
	var errs []obj
	if v, ok := argStr(in, "title"); ok && tooLong(v, maxTitle) {
		errs = append(errs, userErr("UserError", "", "Title is too long (maximum is 255 characters)", "title"))
	}
	for i, raw := range media {
		m := argMap(raw)
		if ct, _ := argStr(m, "mediaContentType"); ct != "IMAGE" {
			return nil, fmt.Errorf("shopifytest: productUpdate media of type %s is not supported (images only)", ct)
		}
		if src, _ := argStr(m, "originalSource"); !validSourceURL(src) {
			errs = append(errs, userErr("UserError", "", "Image URL is invalid", "media", i, "originalSource"))
		}
		if alt, _ := argStr(m, "alt"); tooLong(alt, maxAlt) {
			errs = append(errs, userErr("UserError", "", "Alt is too long (maximum is 512 characters)", "media", i, "alt"))
		}
	}
	if len(p.media)+len(media) > maxProductMedia {
		errs = append(errs, userErr("UserError", "", "Product media limit exceeded", "media"))
	}
	if len(errs) > 0 {
		return obj{"ProductUpdatePayload", fields{"product": nil, "userErrors": errs}}, nil
	}
	if v, ok := argStr(in, "title"); ok {
		p.title = v
	}
	if v, ok := argStr(in, "productType"); ok {
		p.productType = v
	}
	if v, ok := argStr(in, "vendor"); ok {
		p.vendor = v
	}
	if v, ok := argStr(in, "status"); ok {
		p.status = v
	}
	if in["tags"] != nil {
		p.tags = argStrings(in["tags"])
	}
	for _, raw := range media {
		m := argMap(raw)
		src, _ := argStr(m, "originalSource")
		alt, _ := argStr(m, "alt")
		name := sourceFilename(src)
		if name == "" {
			name = "image"
		}
		f := e.s.newFile(e.sh, e.sh.uniqueName(name), alt)
		e.s.reprocess(e.sh, f, src)
		p.media = append(p.media, f.id)
	}
	p.updatedAt = e.s.opts.Now()
	return obj{"ProductUpdatePayload", fields{"product": obj{"Product", p}, "userErrors": []obj{}}}, nil
}

func mutProductReorderMedia(e *exec, _ any, args map[string]any) (any, error) {
	rawID, _ := argStr(args, "id")
	pid, _ := parseGID(rawID, "Product")
	p := e.sh.products[pid]
	me := func(code, msg string, f ...any) (any, error) {
		return obj{"ProductReorderMediaPayload", fields{"job": nil, "mediaUserErrors": []obj{userErr("MediaUserError", code, msg, f...)}}}, nil
	}
	if p == nil {
		return me("PRODUCT_DOES_NOT_EXIST", "Product does not exist", "id")
	}
	type move struct {
		id  int64
		pos int
	}
	var moves []move
	for i, raw := range argList(args["moves"]) {
		m := argMap(raw)
		mid, _ := argStr(m, "id")
		fid, ok := parseGID(mid, "MediaImage")
		if !ok || e.sh.files[fid] == nil {
			return me("MEDIA_DOES_NOT_EXIST", fmt.Sprintf("Media id %s does not exist", mid), "moves", i, "id")
		}
		if !slices.Contains(p.media, fid) {
			return me("MEDIA_DOES_NOT_EXIST_ON_PRODUCT", fmt.Sprintf("Media id %s does not exist on this product", mid), "moves", i, "id")
		}
		pos, ok := argInt(m["newPosition"])
		if !ok || pos < 0 {
			return me("INVALID", "newPosition is invalid", "moves", i, "newPosition")
		}
		moves = append(moves, move{fid, int(pos)})
	}
	j := &job{id: "gid://shopify/Job/" + uuid.NewString()}
	j.apply = func() {
		// Like Shopify: each move in turn takes the media out and puts it at its new 0-based
		// position, the others shifting; a position past the end means last.
		for _, m := range moves {
			if !slices.Contains(p.media, m.id) {
				continue
			}
			p.media = removeID(p.media, m.id)
			p.media = slices.Insert(p.media, min(m.pos, len(p.media)), m.id)
		}
		p.updatedAt = e.s.opts.Now()
	}
	e.s.addJob(e.sh, j)
	return obj{"ProductReorderMediaPayload", fields{"job": obj{"Job", j}, "mediaUserErrors": []obj{}}}, nil
}

func mutVariantMedia(appendMode bool) resolver {
	payload := "ProductVariantDetachMediaPayload"
	if appendMode {
		payload = "ProductVariantAppendMediaPayload"
	}
	return func(e *exec, _ any, args map[string]any) (any, error) {
		fail := func(code, msg string, f ...any) (any, error) {
			return obj{payload, fields{"product": nil, "productVariants": nil, "userErrors": []obj{userErr("MediaUserError", code, msg, f...)}}}, nil
		}
		rawID, _ := argStr(args, "productId")
		pid, _ := parseGID(rawID, "Product")
		p := e.sh.products[pid]
		if p == nil {
			return fail("PRODUCT_DOES_NOT_EXIST", "Product does not exist", "productId")
		}
		type link struct {
			v  *variant
			id int64
		}
		var links []link
		seen := map[*variant]bool{}
		for i, raw := range argList(args["variantMedia"]) {
			in := argMap(raw)
			vid, _ := argStr(in, "variantId")
			var v *variant
			if n, ok := parseGID(vid, "ProductVariant"); ok {
				for _, x := range p.variants {
					if x.id == n {
						v = x
					}
				}
			}
			if v == nil {
				return fail("PRODUCT_VARIANT_DOES_NOT_EXIST_ON_PRODUCT", fmt.Sprintf("Variant %s does not exist on the product", vid), "variantMedia", i, "variantId")
			}
			if seen[v] {
				return fail("PRODUCT_VARIANT_SPECIFIED_MULTIPLE_TIMES", "Product variant is specified more than once.", "variantMedia", i, "variantId")
			}
			seen[v] = true
			ids := argStrings(in["mediaIds"])
			if len(ids) == 0 {
				return fail("BLANK", "Media ids can't be blank", "variantMedia", i, "mediaIds")
			}
			if appendMode && len(ids) > 1 {
				return fail("TOO_MANY_MEDIA_PER_INPUT_PAIR", "Only one media can be attached to a variant.", "variantMedia", i, "mediaIds")
			}
			for _, mid := range ids {
				fid, ok := parseGID(mid, "MediaImage")
				if !ok || e.sh.files[fid] == nil {
					return fail("MEDIA_DOES_NOT_EXIST", fmt.Sprintf("Media %s does not exist", mid), "variantMedia", i, "mediaIds")
				}
				if !slices.Contains(p.media, fid) {
					return fail("MEDIA_DOES_NOT_EXIST_ON_PRODUCT", fmt.Sprintf("Media %s does not exist on the product", mid), "variantMedia", i, "mediaIds")
				}
				if appendMode {
					if e.sh.files[fid].status != "READY" {
						return fail("NON_READY_MEDIA", "Non-ready media cannot be attached to variants.", "variantMedia", i, "mediaIds")
					}
					if len(v.media) > 0 {
						return fail("PRODUCT_VARIANT_ALREADY_HAS_MEDIA", "The product variant already has attached media.", "variantMedia", i, "variantId")
					}
				} else if !slices.Contains(v.media, fid) {
					return fail("MEDIA_IS_NOT_ATTACHED_TO_VARIANT", fmt.Sprintf("Media %s is not attached to the variant", mid), "variantMedia", i, "mediaIds")
				}
				links = append(links, link{v, fid})
			}
		}
		var variants []obj
		for _, l := range links {
			if appendMode {
				l.v.media = append(l.v.media, l.id)
			} else {
				l.v.media = removeID(l.v.media, l.id)
			}
			variants = append(variants, obj{"ProductVariant", variantRef{p, l.v}})
		}
		p.updatedAt = e.s.opts.Now()
		return obj{payload, fields{"product": obj{"Product", p}, "productVariants": variants, "userErrors": []obj{}}}, nil
	}
}
