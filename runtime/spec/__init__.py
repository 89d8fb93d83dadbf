"""The bundle's config.json: loaded, validated against oci-spec/ and turned into a typed model."""
