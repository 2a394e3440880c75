"""What teams keep at the gateway's upstream, and who owns it: every object a team makes is
recorded under that team, and another team's lookup misses as if the object never existed.

`responses` holds the Responses API's side: the responses the gateway serves itself (by
translation), stored whole, and the owner of each response upstream stores and of each item
of a team's responses. `ownership` records the owner of every other
object made upstream through the gateway (files, stored chat completions, vector stores) and
pages each team's own. Redis I/O;
imports config and wire only.
"""
