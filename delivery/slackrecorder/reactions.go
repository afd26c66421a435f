package slackrecorder

import (
	"slices"
	"strings"
)

// The fake's reactions and user groups, for approvals and cancels from chat:
//
//   - reactions.get (channel, timestamp, full): the reactions React put on a message the
//     fake holds, each with its users (message_not_found for any other; needs
//     reactions:read)
//   - usergroups.users.list (usergroup): the members SetGroup gave the group
//     (no_such_subteam for any other; needs usergroups:read)

func init() {
	methods["reactions.get"] = true
	methods["usergroups.users.list"] = true
}

// controlState is what people did in the fake workspace. Server.mu guards it.
type controlState struct {
	reactions map[string]map[string][]string // "channel ts" -> reaction -> users, in order
	names     map[string][]string            // "channel ts" -> reactions in order of first use
	groups    map[string][]string
}

func (s *Server) controls() *controlState {
	if s.control == nil {
		s.control = &controlState{reactions: map[string]map[string][]string{}, names: map[string][]string{}, groups: map[string][]string{}}
	}
	return s.control
}

// React adds user's reaction name (without colons: "white_check_mark") to the message ts in
// channel, as a person clicking it would. Reacting twice with the same name counts once.
func (s *Server) React(channel, ts, name, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.controls()
	key := channel + " " + ts
	if c.reactions[key] == nil {
		c.reactions[key] = map[string][]string{}
	}
	if _, ok := c.reactions[key][name]; !ok {
		c.names[key] = append(c.names[key], name)
	}
	if !slices.Contains(c.reactions[key][name], user) {
		c.reactions[key][name] = append(c.reactions[key][name], user)
	}
}

// SetGroup makes the user group id have users as its members.
func (s *Server) SetGroup(id string, users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.controls().groups[id] = slices.Clone(users)
}

// actControl answers reactions.get and usergroups.users.list. s.mu is held.
func (s *Server) actControl(method string, p map[string]string) map[string]any {
	c := s.controls()
	switch method {
	case "reactions.get":
		if !slices.Contains(s.scopes, "reactions:read") {
			return map[string]any{"ok": false, "error": "missing_scope", "needed": "reactions:read", "provided": strings.Join(s.scopes, ",")}
		}
		var m *Message
		for _, x := range s.msgs {
			if x.Channel == p["channel"] && x.TS == p["timestamp"] && !x.Ephemeral {
				m = x
			}
		}
		if m == nil {
			return slackErr("message_not_found")
		}
		key := m.Channel + " " + m.TS
		var rs []map[string]any
		for _, name := range c.names[key] {
			users := c.reactions[key][name]
			rs = append(rs, map[string]any{"name": name, "count": len(users), "users": users})
		}
		msg := map[string]any{"type": "message", "text": m.Text, "ts": m.TS}
		if len(rs) > 0 {
			msg["reactions"] = rs
		}
		return map[string]any{"ok": true, "type": "message", "channel": m.Channel, "message": msg}
	case "usergroups.users.list":
		if !slices.Contains(s.scopes, "usergroups:read") {
			return map[string]any{"ok": false, "error": "missing_scope", "needed": "usergroups:read", "provided": strings.Join(s.scopes, ",")}
		}
		users, ok := c.groups[p["usergroup"]]
		if !ok {
			return slackErr("no_such_subteam")
		}
		if users == nil {
			users = []string{}
		}
		return map[string]any{"ok": true, "users": users}
	}
	return slackErr("unknown_method")
}
