package rtb

import (
	"strings"
	"testing"
)

func TestDecodeSamples(t *testing.T) {
	t.Parallel()
	root, err := parseXML([]byte(sampleAddImage))
	if err != nil {
		t.Fatal(err)
	}
	if env, ok := readEnvelope(root); !ok || !env.ok() {
		t.Errorf("envelope = %+v, %v", env, ok)
	}
	if got := decodeTicket(root); got != "a37a1f55-7cd4-4474-db19-ac03e85538a7" {
		t.Errorf("ticket = %q", got)
	}
	root, err = parseXML([]byte(sampleStatus))
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeStatus(root)
	want := ImageStatus{Ticket: "33979dfe-5ea7-44ea-b3dd-7fde33bc37e9", StatusID: 80, StatusName: "Delivered", FinalImageURL: "1000003/2000000/final/myimage.jpg"}
	if err != nil || *st != want {
		t.Errorf("status = %+v, %v", st, err)
	}
}

func TestParseXMLRejects(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		"", "   ", "plain text", "<a>", "<a></b>", "<a/><b/>",
		strings.Repeat("<a>", maxXMLDepth+1) + strings.Repeat("</a>", maxXMLDepth+1),
		`<?xml version="1.0" encoding="utf-16"?><a/>`,
		`<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`,
	} {
		if _, err := parseXML([]byte(doc)); err == nil {
			t.Errorf("parseXML(%.40q) accepted", doc)
		}
	}
}

// FuzzDecodeXML runs every answer decoder over arbitrary bytes: none may panic.
func FuzzDecodeXML(f *testing.F) {
	for _, s := range []string{
		sampleTemplates, sampleAddImage, sampleStatus,
		`<ImageStatusResponse><ErrorCode>noError</ErrorCode><ImageStatus><StatusId>70</StatusId></ImageStatus></ImageStatusResponse>`,
		`<x xmlns:a="u"><a:ERRORCODE>Bad</a:ERRORCODE><message>m</message></x>`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><a>` + "\xe9" + `</a>`,
		`<TEMPLATES><TEMPLATE><PRICE>1.00</PRICE></TEMPLATE></TEMPLATES>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := parseXML(data)
		if err != nil {
			return
		}
		readEnvelope(root)
		decodeTicket(root)
		decodeTemplates(root)
		decodeStatus(root)
	})
}
