package crmfake

// SetInt applies one integer field of a faults change: it sets *dst to *v
// unless v is nil (the field is not in the change), and refuses a value
// outside lo..hi with a 400 that names the field.
func SetInt(name string, v *int, lo, hi int, dst *int) error {
	if v == nil {
		return nil
	}
	if *v < lo || *v > hi {
		return BadRequest("%s must be between %d and %d, not %d", name, lo, hi, *v)
	}
	*dst = *v
	return nil
}

// Rules describes the match rules of a fake's faults (such as its reject
// and refuse rules): each names a field of the records and a text; a
// record whose field contains the text is what the rule acts on.
type Rules struct {
	// Key is what a rule names in the control API's field names: "field"
	// gives reject_field and reject_contains.
	Key string
	// Valid reports whether a rule can name field.
	Valid func(field string) bool
	// Want says which fields are Valid, for the error: "one of email,
	// phone".
	Want string
	// Example is a valid field, for the errors' example.
	Example string
}

// Set merges a change of the rule named rule ("reject") into *field and
// *contains: newField and newContains are the change's values, nil where
// it leaves them, and a field of "" removes the rule with its text. The
// result must be a rule (both set) or none. The text is never echoed: it
// may be lead data.
func (r Rules) Set(rule string, newField, newContains *string, field, contains *string) error {
	if newField != nil {
		if *newField != "" && !r.Valid(*newField) {
			return BadRequest(`%s_%s must be %s, or "" to remove the rule`, rule, r.Key, r.Want)
		}
		*field = *newField
		if *field == "" {
			*contains = ""
		}
	}
	if newContains != nil {
		*contains = *newContains
	}
	switch {
	case *field != "" && *contains == "":
		return BadRequest(`%[1]s_contains is empty: a %[1]s rule needs the text to look for, e.g. {"%[1]s_%[2]s":"%[3]s","%[1]s_contains":"blocked"}`, rule, r.Key, r.Example)
	case *field == "" && *contains != "":
		return BadRequest(`%[1]s_contains needs %[1]s_%[2]s: name the %[2]s to look in, e.g. {"%[1]s_%[2]s":"%[3]s","%[1]s_contains":"blocked"}`, rule, r.Key, r.Example)
	}
	return nil
}
