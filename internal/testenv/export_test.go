package testenv

import "google.golang.org/protobuf/proto"

// RenderPayloads renders m as HistoryText renders an event.
func RenderPayloads(m proto.Message) string {
	var r renderer
	r.message("", m.ProtoReflect())
	return r.sb.String()
}
