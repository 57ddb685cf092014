// Package pci finds payment card numbers (PANs) in free text so that they can
// be rejected or masked before anything is published, stored or logged.
//
// A card number is 13 to 19 digits that pass the Luhn check, written either
// contiguously or split by single spaces or dashes ("4111 1111-1111 1111").
// A run is digits separated at most by single spaces or dashes; a group is
// digits written without a separator. Every stretch of a run that begins and
// ends at group edges and has 13 to 19 digits is checked, so a card number
// glued to letters ("ref4111111111111111x"), written in groups, or next to
// other numbers ("qty 1 4111 1111 1111 1111") is found, while a 16-digit
// number that fails Luhn passes through. A single group longer than 19
// digits is checked window by window. A numeric identifier that happens to
// pass Luhn is treated as a card number: for card data a false alarm is the
// safe error.
//
// Known limits, chosen so that numbers failing Luhn pass through: digits
// separated by anything other than one space or one dash (a double space,
// "_" or ".") are separate runs; a card written glued to further digits
// within one group of at most 19 digits ("4111111111111111999") is judged
// by the whole group; and canonical UUIDs are skipped, so a card glued to a
// UUID-shaped prefix can hide in it. producers/pci/testdata/corpus.tsv
// holds the cases that are found and those that pass.
//
// Nothing in this package ever returns or logs the digits it found.
package pci
