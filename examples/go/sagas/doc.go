// Package sagas holds the example shop's sagas. Each reacts to order events
// with commands to other domains, keeps the correlation id of the event that
// triggered it, and sets nothing the framework sets (expected sequence 0, no
// saga origin, no resequencing flag: the framework fills those in).
package sagas
