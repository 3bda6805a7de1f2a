package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
)

// File is an entry of the shop's Files.
type File struct {
	ID       string
	Filename string // from URL; "" until the file is READY (except when found by FindFile)
	URL      string
	Status   string // fileStatus: UPLOADED | PROCESSING | READY | FAILED
	Alt      string
}

type fileNode struct {
	ID         string `json:"id"`
	Alt        string `json:"alt"`
	FileStatus string `json:"fileStatus"`
	URL        string `json:"url"` // GenericFile
	Image      *struct {
		URL string `json:"url"`
	} `json:"image"` // MediaImage
}

func (n fileNode) file() File {
	f := File{ID: n.ID, Alt: n.Alt, Status: n.FileStatus, URL: n.URL}
	if n.Image != nil {
		f.URL = n.Image.URL
	}
	f.Filename = FilenameFromURL(f.URL)
	return f
}

type stagedParameter struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type filesPayload struct {
	Files      []fileNode     `json:"files"`
	UserErrors []gqlUserError `json:"userErrors"`
}

// StagedFile is a file to upload to staged storage: its exact name (the extension matters:
// fileUpdate requires a replacement to carry the extension of the file it replaces) and its MIME
// type.
type StagedFile struct{ Name, Mime string }

// StagedTarget is where a staged file's bytes go.
type StagedTarget struct {
	File        StagedFile
	url         string
	resourceURL string
	params      []stagedParameter
}

// StageUpload uploads bytes to Shopify's staged upload storage and returns the resourceUrl to use
// as originalSource.
func (c *Client) StageUpload(ctx context.Context, filename, mimeType string, data []byte) (string, error) {
	ts, err := c.stageTargets(ctx, []StagedFile{{filename, mimeType}}, int64(len(data)))
	if err != nil {
		return "", err
	}
	return c.Upload(ctx, ts[0], data)
}

// StageTargets asks for several files' staged upload targets in one stagedUploadsCreate, before
// their bytes are at hand: without a size, a target takes an image up to Shopify's limit (the
// size is required for videos and 3D models only).
func (c *Client) StageTargets(ctx context.Context, files []StagedFile) ([]*StagedTarget, error) {
	return c.stageTargets(ctx, files, -1)
}

// stageTargets is StageTargets with each file's size, when it is known (size >= 0).
func (c *Client) stageTargets(ctx context.Context, files []StagedFile, size int64) ([]*StagedTarget, error) {
	var out struct {
		StagedUploadsCreate struct {
			StagedTargets []struct {
				URL         string            `json:"url"`
				ResourceURL string            `json:"resourceUrl"`
				Parameters  []stagedParameter `json:"parameters"`
			} `json:"stagedTargets"`
			UserErrors []gqlUserError `json:"userErrors"`
		} `json:"stagedUploadsCreate"`
	}
	input := make([]map[string]any, len(files))
	names := make([]string, len(files))
	for i, f := range files {
		input[i] = map[string]any{"filename": f.Name, "mimeType": f.Mime, "resource": "IMAGE", "httpMethod": "POST"}
		if size >= 0 {
			input[i]["fileSize"] = strconv.FormatInt(size, 10)
		}
		names[i] = f.Name
	}
	what := strings.Join(names, ", ")
	if err := c.do(ctx, "StagedUploadsCreate", docStagedUploadsCreate, map[string]any{"input": input}, &out); err != nil {
		return nil, fmt.Errorf("stage upload %s: %w", what, err)
	}
	p := out.StagedUploadsCreate
	if err := userErrorsToError(p.UserErrors); err != nil {
		return nil, fmt.Errorf("stage upload %s: %w", what, err)
	}
	if len(p.StagedTargets) != len(files) {
		return nil, fmt.Errorf("stage upload %s: shopify returned %d targets", what, len(p.StagedTargets))
	}
	ts := make([]*StagedTarget, len(files))
	for i, t := range p.StagedTargets {
		if t.URL == "" || t.ResourceURL == "" {
			return nil, fmt.Errorf("stage upload %s: shopify returned no usable target", files[i].Name)
		}
		ts[i] = &StagedTarget{File: files[i], url: t.URL, resourceURL: t.ResourceURL, params: t.Parameters}
	}
	return ts, nil
}

// Upload sends the file's bytes to its staged target and returns the resourceUrl to use as
// originalSource.
func (c *Client) Upload(ctx context.Context, t *StagedTarget, data []byte) (string, error) {
	filename := t.File.Name
	form, err := newUploadForm(t.params, filename, data)
	if err != nil {
		return "", fmt.Errorf("stage upload %s: build form: %w", filename, err)
	}
	var lastErr error
	for attempt := 1; attempt <= c.opts.MaxAttempts; attempt++ {
		lastErr = c.postUpload(ctx, t.url, form)
		if lastErr == nil {
			return t.resourceURL, nil
		}
		if !IsRetryable(lastErr) || ctx.Err() != nil {
			break
		}
		if err := sleepCtx(ctx, c.backoff(attempt)); err != nil {
			return "", fmt.Errorf("stage upload %s: %w", filename, errors.Join(err, lastErr))
		}
	}
	return "", fmt.Errorf("stage upload %s: %w", filename, lastErr)
}

// uploadForm is a staged upload's multipart body: the signed parameters
// first and the file last, as the storage behind the target wants them.
// The file's bytes are sent from the caller's slice, never copied into the
// body: an image can be 20 MB, and several are uploaded at once.
type uploadForm struct {
	contentType string
	head, tail  []byte // everything before and after the file's bytes
	data        []byte
}

func newUploadForm(params []stagedParameter, filename string, data []byte) (*uploadForm, error) {
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	for _, p := range params {
		if err := mw.WriteField(p.Name, p.Value); err != nil {
			return nil, err
		}
	}
	if _, err := mw.CreateFormFile("file", filename); err != nil {
		return nil, err
	}
	f := &uploadForm{contentType: mw.FormDataContentType(), data: data}
	f.head = bytes.Clone(head.Bytes())
	head.Reset()
	if err := mw.Close(); err != nil {
		return nil, err
	}
	f.tail = head.Bytes()
	return f, nil
}

// body is a fresh reader of the whole form, for each attempt.
func (f *uploadForm) body() io.ReadCloser {
	return io.NopCloser(io.MultiReader(bytes.NewReader(f.head), bytes.NewReader(f.data), bytes.NewReader(f.tail)))
}

func (f *uploadForm) size() int64 { return int64(len(f.head) + len(f.data) + len(f.tail)) }

func (c *Client) postUpload(ctx context.Context, target string, form *uploadForm) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, form.body())
	if err != nil {
		return fmt.Errorf("build upload request: %w", err)
	}
	req.ContentLength = form.size()
	req.GetBody = func() (io.ReadCloser, error) { return form.body(), nil }
	req.Header.Set("Content-Type", form.contentType)
	resp, err := c.hc.Do(req)
	if err != nil {
		return &TransportError{Operation: "staged upload", Err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return &HTTPError{Operation: "staged upload", Status: resp.StatusCode, Body: excerpt(raw, "")}
	}
	return nil
}

// fileUpdate runs fileUpdate for the files and returns the typed user errors.
func (c *Client) fileUpdate(ctx context.Context, inputs ...map[string]any) error {
	var out struct {
		FileUpdate filesPayload `json:"fileUpdate"`
	}
	if err := c.do(ctx, "FileUpdate", docFileUpdate, map[string]any{"files": inputs}, &out); err != nil {
		return err
	}
	return userErrorsToError(out.FileUpdate.UserErrors)
}

// ReplaceFileImage swaps a file's bytes in place (fileUpdate originalSource): the id, position in
// the product and variant links stay. Shopify requires originalSource to carry the same file
// extension as the file.
func (c *Client) ReplaceFileImage(ctx context.Context, fileID, originalSource string) error {
	if err := c.fileUpdate(ctx, map[string]any{"id": fileID, "originalSource": originalSource}); err != nil {
		return fmt.Errorf("replace image of file %s: %w", fileID, err)
	}
	return nil
}

// FileSource is a file and the new bytes it takes, as a staged upload's resource URL.
type FileSource struct{ ID, Source string }

// ReplaceFileImages swaps several files' bytes in place in one fileUpdate, as ReplaceFileImage
// does one's. A file Shopify refuses (not READY, another extension) fails the call with its
// userError; the caller cannot tell from that alone which of the others were swapped.
func (c *Client) ReplaceFileImages(ctx context.Context, files []FileSource) error {
	if len(files) == 0 {
		return nil
	}
	in := make([]map[string]any, len(files))
	ids := make([]string, len(files))
	for i, f := range files {
		in[i] = map[string]any{"id": f.ID, "originalSource": f.Source}
		ids[i] = f.ID
	}
	if err := c.fileUpdate(ctx, in...); err != nil {
		return fmt.Errorf("replace images of files %s: %w", strings.Join(ids, ", "), err)
	}
	return nil
}

// AttachFile adds the file to the product's media (fileUpdate referencesToAdd). A non-nil alt
// sets the file's alt text in the same call.
func (c *Client) AttachFile(ctx context.Context, fileID, productID string, alt *string) error {
	in := map[string]any{"id": fileID, "referencesToAdd": []string{productID}}
	if alt != nil {
		in["alt"] = *alt
	}
	if err := c.fileUpdate(ctx, in); err != nil {
		return fmt.Errorf("attach file %s to %s: %w", fileID, productID, err)
	}
	return nil
}

// DetachFile removes the file from the product's media; the file stays in Files (revert relies
// on that).
func (c *Client) DetachFile(ctx context.Context, fileID, productID string) error {
	return c.DetachFiles(ctx, productID, fileID)
}

// FileAlt is a file to attach with the alt text it takes.
type FileAlt struct{ ID, Alt string }

// AttachFiles adds the files to the product's media in one fileUpdate, in their order, each with
// its alt text.
func (c *Client) AttachFiles(ctx context.Context, productID string, files []FileAlt) error {
	if len(files) == 0 {
		return nil
	}
	in := make([]map[string]any, len(files))
	for i, f := range files {
		in[i] = map[string]any{"id": f.ID, "referencesToAdd": []string{productID}, "alt": f.Alt}
	}
	if err := c.fileUpdate(ctx, in...); err != nil {
		return fmt.Errorf("attach %d files to %s: %w", len(files), productID, err)
	}
	return nil
}

// DetachFiles removes the files from the product's media in one fileUpdate; they stay in Files.
func (c *Client) DetachFiles(ctx context.Context, productID string, fileIDs ...string) error {
	if len(fileIDs) == 0 {
		return nil
	}
	in := make([]map[string]any, len(fileIDs))
	for i, id := range fileIDs {
		in[i] = map[string]any{"id": id, "referencesToRemove": []string{productID}}
	}
	if err := c.fileUpdate(ctx, in...); err != nil {
		return fmt.Errorf("detach file %s from %s: %w", strings.Join(fileIDs, ", "), productID, err)
	}
	return nil
}

// CreateFile creates an image file in Files under an exact filename. A name that already exists
// yields ErrFileExists (RAISE_ERROR), which lets a retried write-back find its earlier attempt.
func (c *Client) CreateFile(ctx context.Context, filename, originalSource, alt string) (string, error) {
	ids, err := c.CreateFiles(ctx, []NewFile{{Name: filename, Source: originalSource, Alt: alt}})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// NewFile is an image file to create: its exact name, its source (a staged upload's resource URL,
// or a URL Shopify fetches) and its alt text.
type NewFile struct{ Name, Source, Alt string }

// CreateFiles creates image files in Files in one fileCreate and returns their ids in order. A
// name that already exists yields ErrFileExists (RAISE_ERROR); Shopify then creates none of them.
func (c *Client) CreateFiles(ctx context.Context, files []NewFile) ([]string, error) {
	names := make([]string, len(files))
	in := make([]map[string]any, len(files))
	for i, f := range files {
		names[i] = f.Name
		in[i] = map[string]any{
			"originalSource": f.Source, "filename": f.Name, "contentType": "IMAGE",
			"duplicateResolutionMode": "RAISE_ERROR",
		}
		if f.Alt != "" {
			in[i]["alt"] = f.Alt
		}
	}
	what := strings.Join(names, ", ")
	var out struct {
		FileCreate filesPayload `json:"fileCreate"`
	}
	if err := c.do(ctx, "FileCreate", docFileCreate, map[string]any{"files": in}, &out); err != nil {
		return nil, fmt.Errorf("create file %s: %w", what, err)
	}
	if err := userErrorsToError(out.FileCreate.UserErrors); err != nil {
		if HasCode(err, "FILENAME_ALREADY_EXISTS") {
			return nil, fmt.Errorf("create file %s: %w (%w)", what, ErrFileExists, err)
		}
		return nil, fmt.Errorf("create file %s: %w", what, err)
	}
	if len(out.FileCreate.Files) != len(files) {
		return nil, fmt.Errorf("create file %s: shopify returned %d files", what, len(out.FileCreate.Files))
	}
	ids := make([]string, len(files))
	for i, f := range out.FileCreate.Files {
		if f.ID == "" {
			return nil, fmt.Errorf("create file %s: shopify returned no id for %s", what, names[i])
		}
		ids[i] = f.ID
	}
	return ids, nil
}

// ErrFilePending is returned by FindFile when no READY file has the name but a file that is
// still processing might: Shopify shows a file's name (in its URL) only once it is READY. Look
// again later rather than create a second copy or take another file for it.
var ErrFilePending = errors.New("shopify: a file that may have this name is still processing")

// FindFile looks a file up by exact filename; nil, nil when there is none. Shopify's filename
// search matches loosely, so only a READY candidate whose URL carries exactly this name (case
// included) is the file. A candidate still processing cannot be told apart and yields
// ErrFilePending; a FAILED one has no name to match and is never taken for the file.
func (c *Client) FindFile(ctx context.Context, filename string) (*File, error) {
	var out struct {
		Files struct {
			Nodes []fileNode `json:"nodes"`
		} `json:"files"`
	}
	q := "filename:'" + searchEscape(filename) + "'"
	if err := c.do(ctx, "FindFile", docFindFile, map[string]any{"query": q}, &out); err != nil {
		return nil, fmt.Errorf("find file %s: %w", filename, err)
	}
	pending := false
	for _, n := range out.Files.Nodes {
		f := n.file()
		switch {
		case f.Status == "READY" && f.Filename == filename:
			return &f, nil
		case f.Status == "UPLOADED" || f.Status == "PROCESSING":
			pending = true
		}
	}
	if pending {
		return nil, fmt.Errorf("find file %s: %w", filename, ErrFilePending)
	}
	return nil, nil
}

// DeleteFiles deletes files from Files (and from every product they are on). Only files the
// app made and no longer needs are deleted: a copy Shopify failed to process, to make room
// for a new one under the same name.
func (c *Client) DeleteFiles(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	var out struct {
		FileDelete struct {
			DeletedFileIDs []string       `json:"deletedFileIds"`
			UserErrors     []gqlUserError `json:"userErrors"`
		} `json:"fileDelete"`
	}
	if err := c.do(ctx, "FileDelete", docFileDelete, map[string]any{"fileIds": ids}, &out); err != nil {
		return fmt.Errorf("delete files %v: %w", ids, err)
	}
	if err := userErrorsToError(out.FileDelete.UserErrors); err != nil {
		if HasCode(err, "FILE_DOES_NOT_EXIST") {
			return nil
		}
		return fmt.Errorf("delete files %v: %w", ids, err)
	}
	return nil
}

// searchEscape escapes a value for a single-quoted Shopify search term.
func searchEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

// FileStatus returns the files with the given ids; ids that do not exist are absent from the map.
func (c *Client) FileStatus(ctx context.Context, ids ...string) (map[string]File, error) {
	var out struct {
		Nodes []*fileNode `json:"nodes"`
	}
	if len(ids) == 0 {
		return map[string]File{}, nil
	}
	if err := c.do(ctx, "FileStatus", docFileStatus, map[string]any{"ids": ids}, &out); err != nil {
		return nil, fmt.Errorf("file status: %w", err)
	}
	res := make(map[string]File, len(ids))
	for _, n := range out.Nodes {
		if n != nil && n.ID != "" {
			res[n.ID] = n.file()
		}
	}
	return res, nil
}
