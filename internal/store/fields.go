package store

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// maxRecordFieldValues bounds the header values a record may hold: more is
// a damaged record, not one this store wrote (its user bounds what it stores
// far below).
const maxRecordFieldValues = 4096

// Flags of a version 2 record.
const (
	flagRestricted = 1 << 0
	flagVary       = 1 << 1 // a marker: its field names and variant keys follow
)

// appendHeader encodes what a version 2 record holds after the validators:
// the header fields, a flags byte, and for a marker its field names and
// variant keys.
func appendHeader(b []byte, m *Meta) []byte {
	b = appendFields(b, m.Header)
	var flags byte
	if m.Restricted {
		flags |= flagRestricted
	}
	if m.Vary != nil {
		flags |= flagVary
	}
	b = append(b, flags)
	if m.Vary != nil {
		b = appendStrings(appendStrings(b, m.Vary), m.Variants)
	}
	return b
}

func appendStrings(b []byte, list []string) []byte {
	b = appendUvarint(b, len(list))
	for _, s := range list {
		b = appendString(b, s)
	}
	return b
}

// strings decodes what appendStrings wrote.
func (r *recordReader) strings() []string {
	n := r.uvarint()
	if n > maxRecordFieldValues {
		r.err, r.b = errShortRecord, nil
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, r.string())
	}
	return out
}

// header decodes what appendHeader (or, for version 1, the header loop of
// that version) wrote into m.
func (r *recordReader) header(version byte, m *Meta) error {
	var err error
	if m.Header, err = r.fields(version); err != nil || version == recordVersionV1 {
		return err
	}
	flags := r.bytes(1)
	if r.err != nil {
		return r.err
	}
	m.Restricted = flags[0]&flagRestricted != 0
	if flags[0]&flagVary != 0 {
		m.Vary, m.Variants = r.strings(), r.strings()
	}
	return r.err
}

// appendFields encodes header fields: their number, then each name with the
// number of its values and the values.
func appendFields(b []byte, fields []Field) []byte {
	b = appendUvarint(b, len(fields))
	for _, f := range fields {
		b = appendString(b, f.Name)
		b = appendUvarint(b, len(f.Values))
		for _, v := range f.Values {
			b = appendString(b, v)
		}
	}
	return b
}

// fields decodes the header fields of a record of the given version. A
// version 1 record holds one value per entry: entries of one name are
// grouped.
func (r *recordReader) fields(version byte) ([]Field, error) {
	n := r.uvarint()
	if n > maxRecordFieldValues {
		return nil, fmt.Errorf("implausible header count %d", n)
	}
	var out []Field
	total := uint64(0)
	for range n {
		name := r.string()
		if version == recordVersionV1 {
			value := r.string()
			if i := slices.IndexFunc(out, func(f Field) bool { return f.Name == name }); i >= 0 {
				out[i].Values = slices.Clip(append(out[i].Values, value))
				continue
			}
			out = append(out, Field{Name: name, Values: []string{value}})
			continue
		}
		nv := r.uvarint()
		if total += nv; total > maxRecordFieldValues || r.err != nil {
			return nil, fmt.Errorf("implausible header value count %d", total)
		}
		values := make([]string, nv)
		for i := range values {
			values[i] = r.string()
		}
		out = append(out, Field{Name: name, Values: values})
	}
	return out, r.err
}

func appendUvarint(b []byte, n int) []byte { return binary.AppendUvarint(b, uint64(n)) }
