package replies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// A job's blocks.json is checked here against Slack's documented Block Kit limits before
// anything is queued, so that Slack never refuses the final reply for its blocks (the
// text would be lost with them) and nothing interactive reaches the channel: a button or
// a select would send its clicks to an interactivity endpoint this app does not have,
// and a job must not decide where they go. Only layout blocks that need none are
// accepted, with exactly the fields Slack documents for them; everything else is named
// in the error.

// Slack's limits (api.slack.com/reference/block-kit/blocks).
const (
	MaxBlocksPerMessage = 50
	maxSectionText      = 3000
	maxSectionFields    = 10
	maxFieldText        = 2000
	maxHeaderText       = 150
	maxContextElements  = 10
	maxAltText          = 2000
	maxImageURL         = 3000
	maxImageTitle       = 2000
	maxBlockID          = 255
)

// mentionRe matches the start of Slack's special mentions that notify many people:
// <!channel>, <!here>, <!everyone> and user groups (<!subteam^ID>).
var mentionRe = regexp.MustCompile(`(?i)<!(channel|here|everyone|subteam\^)`)

// NeutraliseMentions makes the special mentions in mrkdwn s show as text instead of
// notifying a channel or a user group: their "<" becomes "&lt;". Mentions of one user
// (<@U…>) stay.
func NeutraliseMentions(s string) string {
	return mentionRe.ReplaceAllStringFunc(s, func(m string) string { return "&lt;" + m[1:] })
}

// ReplyText is a job's message.md as it is posted: masked, and with channel-wide and
// user-group mentions neutralised unless allowMentions.
func ReplyText(s string, m *Masker, allowMentions bool) string {
	s = m.Redact(strings.ToValidUTF8(s, "\uFFFD"))
	if !allowMentions {
		s = NeutraliseMentions(s)
	}
	return strings.TrimSpace(s)
}

// ReplyBlocks checks a job's blocks.json and returns the blocks to post, re-encoded:
// every string in them masked and, unless allowMentions, the mentions of mrkdwn text
// neutralised. The limits are checked on the result, which is what Slack gets. The error
// says what is wrong, for the job log and the reply.
func ReplyBlocks(raw []byte, m *Masker, allowMentions bool) (json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("it is not valid JSON: %v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("it holds more than one JSON value")
	}
	blocks, ok := v.([]any)
	if !ok {
		return nil, errors.New("it must be a JSON array of blocks")
	}
	if len(blocks) == 0 {
		return nil, errors.New("it holds no blocks")
	}
	if len(blocks) > MaxBlocksPerMessage {
		return nil, fmt.Errorf("it holds %d blocks; Slack allows at most %d in a message", len(blocks), MaxBlocksPerMessage)
	}
	for i := range blocks {
		blocks[i] = redactValue(blocks[i], m)
	}
	for i, b := range blocks {
		if err := checkBlock(b, allowMentions); err != nil {
			return nil, fmt.Errorf("block %d: %w", i+1, err)
		}
	}
	// Without HTML escaping: Slack reads "<" as it is, and "&lt;" must stay what it says.
	var out bytes.Buffer
	e := json.NewEncoder(&out)
	e.SetEscapeHTML(false)
	if err := e.Encode(blocks); err != nil {
		return nil, fmt.Errorf("encode blocks: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// redactValue masks every string of v, map keys excepted (they are checked against the
// fields Slack knows).
func redactValue(v any, m *Masker) any {
	switch x := v.(type) {
	case string:
		return m.Redact(strings.ToValidUTF8(x, "\uFFFD"))
	case []any:
		for i := range x {
			x[i] = redactValue(x[i], m)
		}
	case map[string]any:
		for k := range x {
			x[k] = redactValue(x[k], m)
		}
	}
	return v
}

type object = map[string]any

func asObject(v any, what string) (object, error) {
	o, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a JSON object", what)
	}
	return o, nil
}

func onlyKeys(o object, what string, keys ...string) error {
	var extra []string
	for k := range o {
		if !slices.Contains(keys, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return fmt.Errorf("%s: field %q is not allowed here (allowed: %s)", what, extra[0], strings.Join(keys, ", "))
	}
	return nil
}

func stringField(o object, key, what string, required bool, max int) (string, error) {
	v, ok := o[key]
	if !ok {
		if required {
			return "", fmt.Errorf("%s: %s is missing", what, key)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: %s must be a string", what, key)
	}
	if required && s == "" {
		return "", fmt.Errorf("%s: %s is empty", what, key)
	}
	if n := utf8.RuneCountInString(s); n > max {
		return "", fmt.Errorf("%s: %s is %d characters, more than Slack's %d", what, key, n, max)
	}
	return s, nil
}

func boolField(o object, key, what string) error {
	if v, ok := o[key]; ok {
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %s must be true or false", what, key)
		}
	}
	return nil
}

// checkBlock checks one block; allowMentions decides whether mrkdwn may keep mentions
// (they were neutralised in place otherwise).
func checkBlock(v any, allowMentions bool) error {
	b, err := asObject(v, "a block")
	if err != nil {
		return err
	}
	typ, _ := b["type"].(string)
	what := fmt.Sprintf("(%s)", typ)
	if typ == "" {
		return errors.New("a block needs a \"type\"")
	}
	if _, err := stringField(b, "block_id", what, false, maxBlockID); err != nil {
		return err
	}
	switch typ {
	case "section":
		if err := onlyKeys(b, what, "type", "block_id", "text", "fields", "accessory", "expand"); err != nil {
			return err
		}
		_, hasText := b["text"]
		fields, hasFields := b["fields"]
		if !hasText && !hasFields {
			return errors.New("(section): needs text or fields")
		}
		if hasText {
			if err := checkText(b, "text", what+" text", maxSectionText, false, allowMentions); err != nil {
				return err
			}
		}
		if hasFields {
			fs, ok := fields.([]any)
			if !ok || len(fs) == 0 {
				return errors.New("(section): fields must be a non-empty array")
			}
			if len(fs) > maxSectionFields {
				return fmt.Errorf("(section): %d fields, more than Slack's %d", len(fs), maxSectionFields)
			}
			for i := range fs {
				if err := checkText(object{"f": fs[i]}, "f", fmt.Sprintf("%s field %d", what, i+1), maxFieldText, false, allowMentions); err != nil {
					return err
				}
			}
		}
		if err := boolField(b, "expand", what); err != nil {
			return err
		}
		if acc, ok := b["accessory"]; ok {
			return checkImageElement(acc, what+" accessory")
		}
		return nil
	case "header":
		if err := onlyKeys(b, what, "type", "block_id", "text"); err != nil {
			return err
		}
		return checkText(b, "text", what+" text", maxHeaderText, true, allowMentions)
	case "divider":
		return onlyKeys(b, what, "type", "block_id")
	case "context":
		if err := onlyKeys(b, what, "type", "block_id", "elements"); err != nil {
			return err
		}
		els, ok := b["elements"].([]any)
		if !ok || len(els) == 0 {
			return errors.New("(context): elements must be a non-empty array")
		}
		if len(els) > maxContextElements {
			return fmt.Errorf("(context): %d elements, more than Slack's %d", len(els), maxContextElements)
		}
		for i, e := range els {
			ew := fmt.Sprintf("%s element %d", what, i+1)
			if o, ok := e.(map[string]any); ok && o["type"] == "image" {
				if err := checkImageElement(e, ew); err != nil {
					return err
				}
				continue
			}
			if err := checkText(object{"e": e}, "e", ew, maxSectionText, false, allowMentions); err != nil {
				return err
			}
		}
		return nil
	case "image":
		if err := onlyKeys(b, what, "type", "block_id", "image_url", "alt_text", "title"); err != nil {
			return err
		}
		if err := checkImageURL(b, what); err != nil {
			return err
		}
		if _, err := stringField(b, "alt_text", what, true, maxAltText); err != nil {
			return err
		}
		if _, ok := b["title"]; ok {
			return checkText(b, "title", what+" title", maxImageTitle, true, allowMentions)
		}
		return nil
	}
	return fmt.Errorf("block type %q is not allowed: only section, header, divider, context and image, which need no interactivity endpoint", typ)
}

// checkText checks the text object o[key]: plain_text, or mrkdwn unless plainOnly.
func checkText(o object, key, what string, max int, plainOnly, allowMentions bool) error {
	t, err := asObject(o[key], what)
	if err != nil {
		return fmt.Errorf("%s must be a text object (type plain_text or mrkdwn)", what)
	}
	typ, _ := t["type"].(string)
	switch {
	case typ == "plain_text":
		if err := onlyKeys(t, what, "type", "text", "emoji"); err != nil {
			return err
		}
		if err := boolField(t, "emoji", what); err != nil {
			return err
		}
	case typ == "mrkdwn" && !plainOnly:
		if err := onlyKeys(t, what, "type", "text", "verbatim"); err != nil {
			return err
		}
		if err := boolField(t, "verbatim", what); err != nil {
			return err
		}
		if s, ok := t["text"].(string); ok && !allowMentions {
			t["text"] = NeutraliseMentions(s)
		}
	case plainOnly:
		return fmt.Errorf("%s: type must be plain_text", what)
	default:
		return fmt.Errorf("%s: type must be plain_text or mrkdwn", what)
	}
	_, err = stringField(t, "text", what, true, max)
	return err
}

func checkImageElement(v any, what string) error {
	e, err := asObject(v, what)
	if err != nil {
		return err
	}
	if e["type"] != "image" {
		return fmt.Errorf("%s: only an image element is allowed (interactive elements need an endpoint)", what)
	}
	if err := onlyKeys(e, what, "type", "image_url", "alt_text"); err != nil {
		return err
	}
	if err := checkImageURL(e, what); err != nil {
		return err
	}
	_, err = stringField(e, "alt_text", what, true, maxAltText)
	return err
}

func checkImageURL(o object, what string) error {
	u, err := stringField(o, "image_url", what, true, maxImageURL)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return fmt.Errorf("%s: image_url must be an http(s) URL", what)
	}
	return nil
}

// BlocksText is the text of blocks as a terminal shows it (try): headers, sections and
// their fields, context, image alt texts, one per line; dividers as a rule.
func BlocksText(blocks json.RawMessage) string {
	var bs []map[string]any
	if json.Unmarshal(blocks, &bs) != nil {
		return ""
	}
	text := func(v any) string {
		o, _ := v.(map[string]any)
		s, _ := o["text"].(string)
		return s
	}
	var b strings.Builder
	for _, bl := range bs {
		switch bl["type"] {
		case "header":
			fmt.Fprintf(&b, "*%s*\n", text(bl["text"]))
		case "section":
			if t := text(bl["text"]); t != "" {
				b.WriteString(t + "\n")
			}
			if fs, ok := bl["fields"].([]any); ok {
				var cells []string
				for _, f := range fs {
					cells = append(cells, text(f))
				}
				for i := 0; i < len(cells); i += 2 {
					b.WriteString(strings.Join(cells[i:min(i+2, len(cells))], " │ ") + "\n")
				}
			}
		case "divider":
			b.WriteString("────────\n")
		case "context":
			els, _ := bl["elements"].([]any)
			var parts []string
			for _, e := range els {
				if o, _ := e.(map[string]any); o["type"] == "image" {
					parts = append(parts, fmt.Sprintf("[image: %v]", o["alt_text"]))
				} else {
					parts = append(parts, text(e))
				}
			}
			b.WriteString(strings.Join(parts, " · ") + "\n")
		case "image":
			fmt.Fprintf(&b, "[image: %v]\n", bl["alt_text"])
		}
	}
	return strings.TrimRight(b.String(), "\n")
}
