package tryjob

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/chatops-executor/chatops-executor/delivery/slackrecorder"
	"github.com/chatops-executor/chatops-executor/replies"
)

// Render writes what the channel shows, as a terminal transcript: each message with its
// edits applied (marked "(edited)" as Slack does), thread replies indented under their
// parent, ephemeral messages marked as visible to one user only, and files as
// "📎 name (N bytes)"; Block Kit blocks as their text (replies.BlocksText). users maps Slack user ids to the names to show in mentions.
func Render(w io.Writer, msgs []slackrecorder.Message, users map[string]string) error {
	var b strings.Builder
	if len(msgs) == 0 {
		b.WriteString("(nothing was posted)\n")
	}
	parents := map[string]bool{}
	for _, m := range msgs {
		if m.ThreadTS == "" {
			parents[m.Channel+" "+m.TS] = true
		}
	}
	channel := ""
	for _, m := range msgs {
		if m.ThreadTS != "" && parents[m.Channel+" "+m.ThreadTS] {
			continue
		}
		if m.Channel != channel {
			channel = m.Channel
			fmt.Fprintf(&b, "┌─ #%s\n", channel)
		}
		renderMessage(&b, m, "│ ", users)
		if m.ThreadTS == "" {
			first := true
			for _, r := range msgs {
				if r.Channel == m.Channel && r.ThreadTS == m.TS {
					if first {
						b.WriteString("│   ↳ thread\n")
						first = false
					}
					renderMessage(&b, r, "│   ┆ ", users)
				}
			}
		}
	}
	if len(msgs) > 0 {
		b.WriteString("└─\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func renderMessage(b *strings.Builder, m slackrecorder.Message, prefix string, users map[string]string) {
	text := Mrkdwn(m.Text, users)
	if m.Blocks != "" {
		// Slack shows the blocks instead of the text (which only notifications show).
		text = Mrkdwn(replies.BlocksText(json.RawMessage(m.Blocks)), users)
	}
	if m.Ephemeral {
		text = "👁 only visible to " + mention(m.User, users) + ": " + text
	}
	if len(m.History) > 1 {
		text += " (edited)"
	}
	if len(m.Files) == 0 || strings.TrimSpace(text) != "" {
		for _, line := range strings.Split(text, "\n") {
			b.WriteString(strings.TrimRight(prefix+line, " ") + "\n")
		}
	}
	for _, f := range m.Files {
		fmt.Fprintf(b, "%s📎 %s (%d bytes)\n", prefix, f.Filename, len(f.Content))
	}
}

var (
	userRef  = regexp.MustCompile(`<@([A-Z0-9]+)(\|[^>]*)?>`)
	chanRef  = regexp.MustCompile(`<#([A-Z0-9]+)(\|([^>]*))?>`)
	special  = regexp.MustCompile(`<!(here|channel|everyone)(\|[^>]*)?>`)
	linkRef  = regexp.MustCompile(`<((?:https?|mailto):[^|>]*)(\|([^>]*))?>`)
	entities = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
	// emoji are the shortcodes the executor's messages use, as Slack draws them.
	emoji = strings.NewReplacer(
		":alarm_clock:", "⏰", ":arrow_forward:", "▶️", ":grey_question:", "❔",
		":hourglass_flowing_sand:", "⏳", ":lock:", "🔒", ":no_entry_sign:", "🚫",
		":white_check_mark:", "✅", ":x:", "❌", ":warning:", "⚠️", ":paperclip:", "📎",
	)
)

func mention(id string, users map[string]string) string {
	if n, ok := users[id]; ok && n != "" {
		return "@" + n
	}
	return "@" + id
}

// Mrkdwn turns Slack message text into what the channel displays: mentions resolved
// to names, links to their text followed by the address, the executor's emoji shortcodes
// drawn, and Slack's escapes undone. Code blocks and *bold* stay as typed.
func Mrkdwn(s string, users map[string]string) string {
	s = userRef.ReplaceAllStringFunc(s, func(m string) string {
		return mention(userRef.FindStringSubmatch(m)[1], users)
	})
	s = chanRef.ReplaceAllStringFunc(s, func(m string) string {
		sm := chanRef.FindStringSubmatch(m)
		if sm[3] != "" {
			return "#" + sm[3]
		}
		return "#" + sm[1]
	})
	s = special.ReplaceAllString(s, "@$1")
	s = linkRef.ReplaceAllStringFunc(s, func(m string) string {
		sm := linkRef.FindStringSubmatch(m)
		if sm[3] == "" || sm[3] == sm[1] {
			return sm[1]
		}
		return sm[3] + " (" + sm[1] + ")"
	})
	// Slack draws no emoji inside code blocks.
	parts := strings.Split(s, "```")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = emoji.Replace(parts[i])
	}
	return entities.Replace(strings.Join(parts, "```"))
}
