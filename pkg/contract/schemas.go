package contract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schemas validates documents against the JSON Schemas under schemas/<version>/ (draft 2020-12).
// Tests use it to hold every example and every message the services produce to the contract.
type Schemas struct {
	byName map[string]*jsonschema.Schema
}

// LoadSchemas compiles every *.schema.json in dir; a schema is named by its file name without
// ".schema.json" (frame-ref, detections, dead-letter, ...).
func LoadSchemas(dir string) (*Schemas, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.schema.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("load schemas from %s: none found (%v)", dir, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	ids := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("load schema: %w", err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", f, err)
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if id == "" {
			return nil, fmt.Errorf("schema %s has no $id", f)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", f, err)
		}
		ids[strings.TrimSuffix(filepath.Base(f), ".schema.json")] = id
	}
	s := &Schemas{byName: map[string]*jsonschema.Schema{}}
	for name, id := range ids {
		sch, err := c.Compile(id)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		s.byName[name] = sch
	}
	return s, nil
}

// Validate checks a JSON document against the named schema.
func (s *Schemas) Validate(name string, doc []byte) error {
	sch, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("no schema named %q", name)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("%s: not JSON: %w", name, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// ValidateValue marshals v and validates it against the named schema.
func (s *Schemas) ValidateValue(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Validate(name, b)
}
