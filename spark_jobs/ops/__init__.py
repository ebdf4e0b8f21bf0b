"""Operations: run metrics, data health and the report people read (layer ops)."""
