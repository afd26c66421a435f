package slackrecorder

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// checkBlocks is what Slack does with a message's "blocks" argument, as its Block Kit
// reference documents it: a JSON array of at most 50 blocks, each of a known type with its
// fields within their limits. It is written from the documentation, apart from the
// executor's own check, so that a test through the fake shows what Slack would refuse.
// It returns Slack's error answer, or nil when Slack would accept the blocks.
//
// Interactive blocks and elements (actions, input, buttons, selects) are accepted, as
// Slack accepts them; that the executor never sends them is for the tests to assert.
func checkBlocks(raw string) map[string]any {
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return slackErr("invalid_blocks_format")
	}
	invalid := func(format string, args ...any) map[string]any {
		return map[string]any{"ok": false, "error": "invalid_blocks",
			"response_metadata": map[string]any{"messages": []string{"[ERROR] " + fmt.Sprintf(format, args...)}}}
	}
	if len(blocks) > 50 {
		return invalid("no more than 50 items allowed [json-pointer:/blocks]")
	}
	chars := func(v any) int {
		s, _ := v.(string)
		return utf8.RuneCountInString(s)
	}
	textObj := func(v any, max int, where string, plain bool) string {
		o, ok := v.(map[string]any)
		if !ok {
			return "must be an object [json-pointer:" + where + "]"
		}
		t, _ := o["type"].(string)
		if t != "plain_text" && (plain || t != "mrkdwn") {
			return "invalid text type [json-pointer:" + where + "/type]"
		}
		if n := chars(o["text"]); n == 0 || n > max {
			return fmt.Sprintf("must be between 1 and %d characters [json-pointer:%s/text]", max, where)
		}
		return ""
	}
	image := func(o map[string]any, where string) string {
		if chars(o["image_url"]) == 0 || chars(o["image_url"]) > 3000 {
			return "must provide image_url of at most 3000 characters [json-pointer:" + where + "]"
		}
		if n := chars(o["alt_text"]); n == 0 || n > 2000 {
			return "alt_text must be between 1 and 2000 characters [json-pointer:" + where + "]"
		}
		return ""
	}
	for i, b := range blocks {
		where := fmt.Sprintf("/blocks/%d", i)
		if chars(b["block_id"]) > 255 {
			return invalid("must be less than 256 characters [json-pointer:%s/block_id]", where)
		}
		msg := ""
		switch b["type"] {
		case "section":
			_, hasText := b["text"]
			fields, hasFields := b["fields"].([]any)
			switch {
			case !hasText && !hasFields:
				msg = "must provide text or fields [json-pointer:" + where + "]"
			case hasText:
				msg = textObj(b["text"], 3000, where+"/text", false)
			}
			if msg == "" && len(fields) > 10 {
				msg = "no more than 10 items allowed [json-pointer:" + where + "/fields]"
			}
			for j, f := range fields {
				if msg == "" {
					msg = textObj(f, 2000, fmt.Sprintf("%s/fields/%d", where, j), false)
				}
			}
		case "header":
			msg = textObj(b["text"], 150, where+"/text", true)
		case "divider":
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) == 0 || len(els) > 10 {
				msg = "must have between 1 and 10 elements [json-pointer:" + where + "/elements]"
			}
			for j, e := range els {
				o, _ := e.(map[string]any)
				w := fmt.Sprintf("%s/elements/%d", where, j)
				if msg == "" && o["type"] == "image" {
					msg = image(o, w)
				} else if msg == "" {
					msg = textObj(e, 3000, w, false)
				}
			}
		case "image":
			msg = image(b, where)
			if msg == "" && b["title"] != nil {
				msg = textObj(b["title"], 2000, where+"/title", true)
			}
		case "actions", "input", "rich_text", "video", "file", "markdown", "table", "context_actions":
			// Known to Slack; their own limits are not modelled here.
		default:
			msg = "unsupported type [json-pointer:" + where + "/type]"
		}
		if msg != "" {
			return invalid("%s", msg)
		}
	}
	return nil
}
