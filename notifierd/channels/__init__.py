"""Channels (SPEC's "wrapper" of workers) at run time: each one's runner assembles its worker pool
(slots in explicit states), its dispatcher and pacing, its outcome handler and its condition
(cool-down, misconfigured); rate groups share pacing among channels of one remote budget."""
