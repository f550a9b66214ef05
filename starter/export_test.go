package starter

// LeadNames is leadNames, for the table tests of the name rule.
var LeadNames = leadNames
