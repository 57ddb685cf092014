// Package pci finds payment card numbers (PANs) in free text so that they can
// be rejected or masked before anything is published, stored or logged.
//
// A card number is 13 to 19 digits that pass the Luhn check, written either
// contiguously or split by single spaces or dashes ("4111 1111-1111 1111").
// Detection is deliberately conservative: every window of 13 to 19 digits in
// a run of digits (separated at most by single spaces or dashes) is checked,
// so a card number embedded in a longer digit string or glued to letters
// ("ref4111111111111111x") is still found. The price is that a long numeric
// identifier that happens to pass Luhn is treated as a card number too; for
// card data a false alarm is the safe error.
//
// Nothing in this package ever returns or logs the digits it found.
package pci
