package rtb

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"rtbshopify/models/text"
)

// The vendor's answers are small XML documents whose element names come in
// several casings in the wild (ERRORCODE, ErrorCode, errorcode). encoding/xml
// matches names case-sensitively, so answers are read into a tiny tree with
// lower-cased local names (namespaces dropped) and queried from there.

// Limits on the tree keep a hostile or broken answer from costing much; a
// real answer has a few dozen elements.
const (
	maxXMLDepth = 32
	maxXMLNodes = 20000
)

type xmlNode struct {
	name     string // lower-cased local name
	text     string // concatenated character data directly inside the element
	children []*xmlNode
}

// child returns the first direct child named name (lower case).
func (n *xmlNode) child(name string) *xmlNode {
	if n == nil {
		return nil
	}
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// childText is the trimmed text of the first direct child named name.
func (n *xmlNode) childText(name string) string {
	if c := n.child(name); c != nil {
		return strings.TrimSpace(c.text)
	}
	return ""
}

// find returns the first element named name in document order, n included.
func (n *xmlNode) find(name string) *xmlNode {
	if n == nil {
		return nil
	}
	if n.name == name {
		return n
	}
	for _, c := range n.children {
		if f := c.find(name); f != nil {
			return f
		}
	}
	return nil
}

// findAll returns every element named name in document order, not descending
// into matches.
func (n *xmlNode) findAll(name string, out []*xmlNode) []*xmlNode {
	if n == nil {
		return out
	}
	if n.name == name {
		return append(out, n)
	}
	for _, c := range n.children {
		out = c.findAll(name, out)
	}
	return out
}

var errNotXML = errors.New("answer is not an XML document")

// parseXML reads one XML document into a case-folded tree.
func parseXML(data []byte) (*xmlNode, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.CharsetReader = charsetReader
	var root *xmlNode
	var stack []*xmlNode
	nodes := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			nodes++
			if nodes > maxXMLNodes || len(stack) >= maxXMLDepth {
				return nil, errors.New("parse XML: document too large or too deep")
			}
			n := &xmlNode{name: strings.ToLower(t.Name.Local)}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("parse XML: more than one root element")
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			// The decoder already checks that end tags match start tags.
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, errNotXML
			}
		}
	}
	if root == nil {
		return nil, errNotXML
	}
	return root, nil
}

// charsetReader accepts the encodings a Windows-hosted service may declare
// for content that is, in practice, ASCII or Latin-1.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	case "iso-8859-1", "latin1", "latin-1", "windows-1252", "cp1252":
		b, err := io.ReadAll(input)
		if err != nil {
			return nil, err
		}
		if utf8.Valid(b) {
			return bytes.NewReader(b), nil
		}
		var buf bytes.Buffer
		for _, c := range b {
			buf.WriteRune(rune(c))
		}
		return &buf, nil
	}
	return nil, fmt.Errorf("unsupported XML encoding %q", label)
}

// envelope is what every answer carries.
type envelope struct {
	ErrorCode string
	Message   string
}

func readEnvelope(root *xmlNode) (envelope, bool) {
	ec := root.find("errorcode")
	if ec == nil {
		return envelope{}, false
	}
	msg := ""
	if m := root.find("message"); m != nil {
		msg = strings.TrimSpace(m.text)
	}
	return envelope{ErrorCode: strings.TrimSpace(ec.text), Message: msg}, true
}

// ok reports whether the envelope says success. An empty ERRORCODE element is
// taken as success too: the element is there, it just reports nothing.
func (e envelope) ok() bool {
	return e.ErrorCode == "" || strings.EqualFold(e.ErrorCode, "noError")
}

// decodeTemplates reads a TEMPLATESRESPONSE tree.
func decodeTemplates(root *xmlNode) ([]Template, error) {
	var out []Template
	for _, t := range root.findAll("template", nil) {
		tpl := Template{
			ID:   t.childText("templateid"),
			Name: t.childText("templatename"),
		}
		if p := t.child("price"); p != nil {
			if p.child("amount") != nil {
				tpl.Price = p.childText("amount")
				tpl.CurrencyID = p.childText("currencyid")
			} else {
				tpl.Price = strings.TrimSpace(p.text)
			}
		}
		if tpl.CurrencyID == "" {
			tpl.CurrencyID = t.childText("currencyid")
		}
		if tpl.ID == "" {
			return nil, errors.New("template without TEMPLATEID")
		}
		out = append(out, tpl)
	}
	return out, nil
}

// decodeTicket reads an ADDIMAGERESPONSE tree.
func decodeTicket(root *xmlNode) string {
	if n := root.find("imageticket"); n != nil {
		return strings.TrimSpace(n.text)
	}
	return ""
}

// decodeStatus reads an IMAGESTATUSRESPONSE tree; FinalImageURL is left as sent.
func decodeStatus(root *xmlNode) (*ImageStatus, error) {
	st := root.find("imagestatus")
	if st == nil {
		// Tolerate the fields sitting directly under the root.
		st = root
	}
	raw := st.childText("statusid")
	if raw == "" {
		return nil, errors.New("status answer without STATUSID")
	}
	id, err := strconv.Atoi(raw)
	if err != nil {
		return nil, fmt.Errorf("status answer with STATUSID %q: not a number", text.Truncate(raw, 32))
	}
	return &ImageStatus{
		Ticket:        st.childText("imageticket"),
		StatusID:      id,
		StatusName:    st.childText("statusname"),
		FinalImageURL: st.childText("finalimageurl"),
	}, nil
}
