package delivery

// Posted returns the Slack timestamp of the job's post called name once Slack confirmed
// it: what reactions and edits of that message refer to. ok is false while it waits, when
// it failed, or when its outcome is unknown.
func (j *Job) Posted(name string) (ts string, ok bool) {
	ops, err := j.read()
	if err != nil {
		return "", false
	}
	for _, o := range ops {
		if o.Name == name && o.Kind == KindPost && o.State == StateDone && o.TS != "" {
			return o.TS, true
		}
	}
	return "", false
}
