/** A field path: map keys and sequence indexes, from the top of the configuration document. */
export type FieldPath = readonly (string | number)[]
