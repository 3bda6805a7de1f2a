package shopifytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Staged uploads imitate Shopify's Google Cloud Storage targets: a POST form whose signed
// parameters must all come back, file last; the resourceUrl is private (GET is refused) and only
// usable as an originalSource.

var stagedMimes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true, "image/heic": true}

func (s *Store) stagedSignature(key string) string {
	m := hmac.New(sha256.New, []byte("staged:"+s.opts.APISecret))
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

func mutStagedUploadsCreate(e *exec, _ any, args map[string]any) (any, error) {
	var targets []obj
	var errs []obj
	for i, raw := range argList(args["input"]) {
		in := argMap(raw)
		res, _ := argStr(in, "resource")
		method, _ := argStr(in, "httpMethod")
		name, _ := argStr(in, "filename")
		mime, _ := argStr(in, "mimeType")
		switch res {
		case "IMAGE", "PRODUCT_IMAGE", "FILE":
		default:
			return nil, fmt.Errorf("shopifytest: stagedUploadsCreate resource %s is not supported", res)
		}
		if method != "POST" {
			return nil, fmt.Errorf("shopifytest: stagedUploadsCreate httpMethod %s is not supported (POST only)", method)
		}
		if strings.TrimSpace(name) == "" || strings.ContainsAny(name, "/\\") {
			errs = append(errs, userErr("UserError", "", "Filename is invalid", "input", i, "filename"))
			continue
		}
		if !stagedMimes[mime] {
			errs = append(errs, userErr("UserError", "", fmt.Sprintf("MIME type %s is not supported for images", mime), "input", i, "mimeType"))
			continue
		}
		size := int64(-1)
		if in["fileSize"] != nil {
			n, ok := argInt(in["fileSize"])
			if !ok || n < 0 {
				errs = append(errs, userErr("UserError", "", "File size is invalid", "input", i, "fileSize"))
				continue
			}
			if n > e.s.opts.MaxImageBytes {
				errs = append(errs, userErr("UserError", "", "File size is too large", "input", i, "fileSize"))
				continue
			}
			size = n
		}
		key := fmt.Sprintf("tmp/%d/products/%s/%s", e.sh.num, uuid.NewString(), name)
		e.s.staged[key] = &stagedObject{filename: name, mime: mime, size: size}
		params := []obj{
			{"StagedUploadParameter", fields{"name": "Content-Type", "value": mime}},
			{"StagedUploadParameter", fields{"name": "success_action_status", "value": "201"}},
			{"StagedUploadParameter", fields{"name": "acl", "value": "private"}},
			{"StagedUploadParameter", fields{"name": "key", "value": key}},
			{"StagedUploadParameter", fields{"name": "x-goog-algorithm", "value": "GOOG4-HMAC-SHA256"}},
			{"StagedUploadParameter", fields{"name": "policy", "value": base64.StdEncoding.EncodeToString([]byte(`{"conditions":[]}`))}},
			{"StagedUploadParameter", fields{"name": "x-goog-signature", "value": e.s.stagedSignature(key)}},
		}
		targets = append(targets, obj{"StagedMediaUploadTarget", fields{
			"url":         e.s.srv.URL + "/staged/upload",
			"resourceUrl": e.s.srv.URL + "/staged/" + key,
			"parameters":  params,
		}})
	}
	if len(errs) > 0 {
		return obj{"StagedUploadsCreatePayload", fields{"stagedTargets": nil, "userErrors": errs}}, nil
	}
	return obj{"StagedUploadsCreatePayload", fields{"stagedTargets": targets, "userErrors": []obj{}}}, nil
}

func stagedError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
}

func (s *Store) handleStagedUpload(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		stagedError(w, http.StatusBadRequest, "InvalidArgument", "multipart/form-data expected")
		return
	}
	form := map[string]string{}
	var data []byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			stagedError(w, http.StatusBadRequest, "InvalidArgument", "bad multipart body")
			return
		}
		if part.FormName() == "file" {
			data, err = io.ReadAll(io.LimitReader(part, s.opts.MaxImageBytes+1))
			if err != nil {
				stagedError(w, http.StatusBadRequest, "InvalidArgument", "bad file part")
				return
			}
			// Like GCS: fields after the file are ignored, so the signed ones must come first.
			break
		}
		v, _ := io.ReadAll(io.LimitReader(part, 64<<10))
		form[part.FormName()] = string(v)
	}
	key := form["key"]
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := s.staged[key]
	switch {
	case data == nil:
		stagedError(w, http.StatusBadRequest, "InvalidArgument", "Cannot find the file field in the POST form")
	case obj == nil || !hmac.Equal([]byte(form["x-goog-signature"]), []byte(s.stagedSignature(key))):
		stagedError(w, http.StatusForbidden, "AccessDenied", "Invalid signature or key")
	case form["policy"] == "" || form["acl"] != "private" || form["x-goog-algorithm"] == "":
		stagedError(w, http.StatusForbidden, "AccessDenied", "Missing policy fields")
	case form["Content-Type"] != obj.mime:
		stagedError(w, http.StatusForbidden, "AccessDenied", "Content-Type does not match the policy")
	case int64(len(data)) > s.opts.MaxImageBytes || obj.size >= 0 && int64(len(data)) > obj.size:
		stagedError(w, http.StatusBadRequest, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
	default:
		obj.data, obj.uploaded = data, true
		status := http.StatusNoContent
		if n, err := strconv.Atoi(form["success_action_status"]); err == nil && (n == 200 || n == 201) {
			status = n
		}
		w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<?xml version='1.0' encoding='UTF-8'?><PostResponse><Key>%s</Key></PostResponse>", key)
	}
}

// handleStagedGet refuses reads: staged objects are private; Shopify reads them itself.
func (s *Store) handleStagedGet(w http.ResponseWriter, _ *http.Request) {
	stagedError(w, http.StatusForbidden, "AccessDenied", "Anonymous caller does not have storage.objects.get access")
}
