package rtbtest

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// el is an XML element to render; names are written in CamelCase here and
// re-spelled per Options.XMLCase.
type el struct {
	name, text string
	kids       []el
}

func (s *Server) spell(name string) string {
	if s.opts.XMLCase == CamelCase {
		return name
	}
	if name == "Message" {
		return "message" // the vendor page spells this one in lower case
	}
	return strings.ToUpper(name)
}

func (s *Server) render(sb *strings.Builder, e el) {
	n := s.spell(e.name)
	if e.text == "" && len(e.kids) == 0 {
		sb.WriteString("<" + n + "/>")
		return
	}
	sb.WriteString("<" + n + ">")
	xml.EscapeText(sb, []byte(e.text))
	for _, k := range e.kids {
		sb.WriteString("\n")
		s.render(sb, k)
	}
	if len(e.kids) > 0 {
		sb.WriteString("\n")
	}
	sb.WriteString("</" + n + ">")
}

func (s *Server) writeXML(w http.ResponseWriter, root el) {
	var sb strings.Builder
	s.render(&sb, root)
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	io.WriteString(w, sb.String())
}

func envelope(root, code, msg string, kids ...el) el {
	return el{name: root, kids: append([]el{{name: "ErrorCode", text: code}, {name: "Message", text: msg}}, kids...)}
}

// writeError answers HTTP 200 with an ERRORCODE, in the shape of ep's answer.
func (s *Server) writeError(w http.ResponseWriter, ep Endpoint, code, msg string) {
	switch ep {
	case EndpointSubmit:
		s.writeXML(w, envelope("AddImageResponse", code, msg, el{name: "ImageTicket", text: ZeroTicket}))
	case EndpointStatus:
		s.writeXML(w, envelope("ImageStatusResponse", code, msg))
	case EndpointTemplates:
		s.writeXML(w, envelope("TemplatesResponse", code, msg))
	default:
		http.Error(w, code+": "+msg, http.StatusBadRequest)
	}
}

// checkCredentials returns the account for email/key, or false.
func (s *Server) checkCredentials(email, key string) (account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[strings.ToLower(strings.TrimSpace(email))]
	if !ok || key == "" || a.key != key {
		return account{}, false
	}
	return a, true
}

func (s *Server) handleTemplates(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if _, ok := s.checkCredentials(q.Get("ContactEmail"), q.Get("ContactAPIkey")); !ok {
		s.writeError(w, EndpointTemplates, CodeInvalidCredentials, "Invalid ContactEmail or ContactAPIkey")
		return
	}
	var list []el
	for _, t := range s.opts.Templates {
		list = append(list, el{name: "Template", kids: []el{
			{name: "Price", kids: []el{{name: "Amount", text: t.Price}, {name: "CurrencyId", text: t.CurrencyID}}},
			{name: "TemplateId", text: t.ID},
			{name: "TemplateName", text: t.Name},
		}})
	}
	s.writeXML(w, envelope("TemplatesResponse", "noError", "", el{name: "Templates", kids: list}))
}

// submitPayload is the documented POST body. encoding/json matches keys
// case-insensitively; strings only, as in the vendor's example, so a client
// sending numbers gets an error here just as a strict server would give one.
type submitPayload struct {
	ContactEmail                      string
	ContactAPIkey                     string
	DeveloperAPIkey                   string `json:"developerAPIkey"`
	TemplateID                        string `json:"templateId"`
	ImageURL                          string
	ImageURL2                         string
	ImageRequestedDeliveryTimeInHours string
	ImageCallbackURL                  string
}

type loseAnswerKey struct{}

func withLoseAnswer(ctx context.Context) context.Context {
	return context.WithValue(ctx, loseAnswerKey{}, true)
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var p submitPayload
	if err := json.Unmarshal(body, &p); err != nil {
		s.writeError(w, EndpointSubmit, CodeInvalidRequest, "The request body is not valid: "+err.Error())
		return
	}
	acct, ok := s.checkCredentials(p.ContactEmail, p.ContactAPIkey)
	if !ok {
		s.writeError(w, EndpointSubmit, CodeInvalidCredentials, "Invalid ContactEmail or ContactAPIkey")
		return
	}
	if strings.TrimSpace(p.ImageURL) == "" {
		s.writeError(w, EndpointSubmit, CodeMissingImageURL, "ImageURL is required")
		return
	}
	tpl, ok := s.template(p.TemplateID)
	if !ok {
		s.writeError(w, EndpointSubmit, CodeInvalidTemplate, "Unknown templateId "+p.TemplateID)
		return
	}
	if h := p.ImageRequestedDeliveryTimeInHours; h != "" {
		if n, err := strconv.Atoi(h); err != nil || n <= 0 {
			s.writeError(w, EndpointSubmit, CodeInvalidRequest, "ImageRequestedDeliveryTimeInHours must be a positive whole number")
			return
		}
	}

	j := &job{
		ticket: uuid.NewString(), account: acct.email, template: tpl,
		imageURL: p.ImageURL, imageURL2: p.ImageURL2, callbackURL: p.ImageCallbackURL,
		deliveryHours: p.ImageRequestedDeliveryTimeInHours, submitted: s.now(),
	}
	s.mu.Lock()
	s.jobs[strings.ToLower(j.ticket)] = j
	s.order = append(s.order, j)
	s.submissions[acct.email]++
	s.mu.Unlock()
	s.log.Info("rtbtest: image queued", "ticket", j.ticket, "template", tpl.ID)

	if lose, _ := r.Context().Value(loseAnswerKey{}).(bool); lose {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	s.writeXML(w, envelope("AddImageResponse", "noError", "", el{name: "ImageTicket", text: j.ticket}))
}

func (s *Server) template(id string) (Template, bool) {
	if id == "" && len(s.opts.Templates) > 0 {
		return s.opts.Templates[0], true
	}
	for _, t := range s.opts.Templates {
		if t.ID == id {
			return t, true
		}
	}
	return Template{}, false
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	acct, ok := s.checkCredentials(q.Get("ContactEmail"), q.Get("ContactAPIkey"))
	if !ok {
		s.writeError(w, EndpointStatus, CodeInvalidCredentials, "Invalid ContactEmail or ContactAPIkey")
		return
	}
	ticket := r.PathValue("ticket")
	s.mu.Lock()
	j := s.jobs[strings.ToLower(ticket)]
	var info JobInfo
	if j != nil && j.account == acct.email {
		info = s.infoLocked(j)
	}
	s.mu.Unlock()
	if info.Ticket == "" {
		// Another account's ticket is as unknown as a made-up one.
		s.writeError(w, EndpointStatus, CodeImageNotFound, "No image with ticket "+ticket)
		return
	}
	s.writeXML(w, envelope("ImageStatusResponse", "noError", "", el{name: "ImageStatus", kids: []el{
		{name: "FinalImageUrl", text: info.FinalImageURL},
		{name: "ImageTicket", text: info.Ticket},
		{name: "StatusId", text: strconv.Itoa(info.StatusID)},
		{name: "StatusName", text: info.StatusName},
	}}))
}

func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f, ok := s.files[strings.ToLower(r.PathValue("ticket"))+"/"+r.PathValue("name")]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
	w.Write(f.data)
}
