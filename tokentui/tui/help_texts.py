"""Plain-words explanations of every pane, shown with F1 on the focused pane.

Plain data (no UI import): a title, what the pane shows, how to read it, and the formula
in one line. Written for a student meeting a language model for the first time; every
statement matches what tokentui computes (see ``engine/sampling.py`` and
``engine/inside.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str
    shows: str
    """What the pane shows."""
    read: str
    """How to read it."""
    formula: str
    """The formula in one line."""

    def to_json(self) -> dict[str, str]:
        return {"title": self.title, "shows": self.shows, "read": self.read, "formula": self.formula}


EXPLANATIONS: dict[str, Explanation] = {
    # ----- main screen -----------------------------------------------------------------------
    "prompt": Explanation(
        title="Prompt",
        shows="The text you give the model. With a chat model it is wrapped in the chat template: "
              "special marker tokens that say who is speaking, ending where the assistant's answer "
              "should begin.",
        read="The model never sees letters, only the token ids this text is cut into. Everything "
             "to the right is computed from these ids; change the prompt and every branch starts "
             "over.",
        formula="ids = tokenizer(chat_template(system, user))",
    ),
    "token_stream": Explanation(
        title="Token stream",
        shows="The prompt (grey) and the completion so far, one piece per token, each coloured by "
              "how likely the model found the token it took.",
        read="A token is often a piece of a word, with its leading space (shown as ·). In the "
             "default colours green means the model gave the token it took more than 70%, red less "
             "than 10%: a surprise (c changes what the colours mean). Move the cursor to a token to "
             "see the alternatives it was chosen from, or press i to look inside the model there.",
        formula="surprise = -log2 p(token | everything before it)   (bits)",
    ),
    "alternatives": Explanation(
        title="Alternatives",
        shows="The most likely next tokens at the selected step: the raw probability p_base, the "
              "probability after the sampling settings p_final, and whether each survived the "
              "filters.",
        read="p_base is what the model itself believes. p_final is what the sampler actually drew "
             "from: temperature reshapes it, top-k/top-p/min-p set the cut tokens to 0 and the rest "
             "is rescaled to sum to 1. Pick another row to branch the story from that token.",
        formula="p_base_i = exp(z_i) / sum_j exp(z_j),  z = the model's logits",
    ),
    "attention": Explanation(
        title="Attention",
        shows="For the selected token, how strongly each earlier token was looked at, in one "
              "layer and head or averaged over them.",
        read="Each row of weights is non-negative and sums to 1 over the earlier tokens. A bright "
             "cell means that token's information was copied in strongly. Attention is one "
             "ingredient of the computation, not a full explanation of why a token was chosen.",
        formula="a_ij = softmax_j(q_i · k_j / sqrt(d_head)),  j <= i",
    ),
    "params": Explanation(
        title="Sampling parameters",
        shows="The settings that turn the model's probabilities into one chosen token: "
              "temperature, top-k, top-p, min-p, penalties and the seed.",
        read="They apply in this order: repetition penalty, presence/frequency penalties, "
             "temperature, top-k, top-p, min-p, then the constraint. Temperature 0 (or greedy) "
             "always takes the most likely token. The same seed with the same settings gives "
             "the same tokens.",
        formula="p_i = exp(z_i / T) / sum_j exp(z_j / T), over the tokens the filters keep",
    ),
    "charts": Explanation(
        title="Charts",
        shows="Top: the distribution at the cursor (the 20 most likely tokens, after the sampling "
              "settings). Bottom: for every step of the branch, the entropy of the distribution and "
              "the surprisal of the token that was taken, both in bits.",
        read="Entropy is the model's uncertainty in bits: 0 means it was sure of one token, 1 bit "
             "is like a fair coin between two, n bits like 2^n equally likely tokens. Surprisal is "
             "-log2 of the taken token's probability: 1 bit for p = 0.5, about 3.3 bits for p = 0.1. "
             "A spike marks a place where the text could easily have gone another way.",
        formula="H = -sum_i p_i log2 p_i   (bits)",
    ),
    "status": Explanation(
        title="Status",
        shows="The bottom line says what just happened (or one line about an error); the header "
              "shows the branch, the speed in tokens per second, the model and where it runs.",
        read="One step is one forward pass through the model for one new token; cached keys and "
             "values of earlier tokens are reused, so a step does not get much slower as the text "
             "grows.",
        formula="tokens per second = 1000 / (milliseconds per step)",
    ),
    # ----- the Inside screen -------------------------------------------------------------------
    "inside_token": Explanation(
        title="Token",
        shows="The token at this position: its id in the vocabulary, the piece of text it stands "
              "for, its raw bytes, whether it is a special marker, and the other pieces the "
              "tokenizer cut from the same word.",
        read="The vocabulary is a fixed list of pieces learned from data; common words are one "
             "piece, rare words are split into several. Some pieces are partial UTF-8 characters "
             "(shown as <0xNN>). The model only ever receives the id.",
        formula="text -> bytes -> pieces (byte-pair merges) -> ids in 0 .. vocab_size - 1",
    ),
    "inside_embedding": Explanation(
        title="Embedding",
        shows="The row of the embedding matrix for this token id: the list of numbers (d_model of "
              "them) the model starts from, its length, and the tokens whose rows point in the "
              "most similar direction.",
        read="The first step of the model is a table lookup: id in, vector out. Training places "
             "tokens used in similar ways near each other, so the nearest neighbours often share "
             "meaning, spelling or grammar. A cosine of 1 means the same direction, 0 perpendicular "
             "(nothing in common), -1 opposite. The chart shows the numbers one bar per dimension "
             "(or, for long vectors, the largest value of each group of dimensions).",
        formula="x_0 = W_E[id];   cos(a, b) = a · b / (|a| |b|)",
    ),
    "inside_position": Explanation(
        title="Position",
        shows="How this model knows where the token sits. Learned positions (GPT-2): a trained "
              "vector per position is added to the embedding. Rotary positions (Llama, Qwen, "
              "SmolLM): nothing is added; in every attention layer the query and key vectors are "
              "rotated by an angle that grows with the position, at a different speed for each "
              "pair of dimensions.",
        read="With rotary embeddings the dot product of a query and a key depends only on how far "
             "apart the two tokens are. Fast pairs (small j, left of the chart) turn a lot per "
             "token and tell near neighbours apart; slow pairs (large j, right) barely turn and "
             "carry long-range position. The cos and sin shown are the model's own numbers for "
             "this position, cos(i theta_j) and sin(i theta_j) for each pair j.",
        formula="theta_j = base^(-2j/d);  (x_j, x_j+d/2) -> (x_j cos(i theta_j) - x_j+d/2 sin(i theta_j), "
                "x_j+d/2 cos(i theta_j) + x_j sin(i theta_j))",
    ),
    "inside_logit_lens": Explanation(
        title="Logit lens",
        shows="What the model would predict as the next token if it stopped after each layer: the "
              "running vector at this position, put through the final norm and the output matrix, "
              "layer by layer.",
        read="Read from the top (first layer) down: the guess usually starts vague or generic and "
             "settles on the answer in the later layers. The last row is exactly the model's real "
             "next-token distribution (p_base, before the sampling settings). The token that really "
             "follows is marked green wherever it appears, and the 'actual' column gives its rank and "
             "probability in every layer. Early layers were not trained to be read this way, so "
             "treat them as a rough view.",
        formula="p_l = softmax(W_U · norm(h_l)),  h_l = the residual stream after layer l",
    ),
    "inside_attention": Explanation(
        title="Attention by layer",
        shows="For this position, one row per layer: the attention to each earlier token (and "
              "itself) averaged over the heads, brighter = more; on the right, the heads' entropy "
              "averaged over the heads.",
        read="Each row sums to 1. A head with entropy near 0 looks at one token; a head near "
             "log2(i+1) spreads its attention evenly over all i+1 tokens. Many heads put most weight "
             "on the very first token when they have nothing specific to look at (an 'attention "
             "sink'). Long sequences show position 0, then the most recent positions.",
        formula="mean_j = (1/H) sum_h a_hij;   H_h = -sum_j a_hij log2 a_hij",
    ),
    "inside_temperature": Explanation(
        title="The temperature knob",
        shows="From this position's logits (after the repetition penalties), the probability of "
              "the top tokens and the entropy as the temperature goes from 0.1 to 2.0, and how "
              "many tokens top-k, top-p and min-p keep at the current settings.",
        read="Dividing the logits by T below 1 sharpens the distribution towards the favourite; "
             "above 1 flattens it so unlikely tokens get more chances. The order of the tokens "
             "never changes, only how far apart their probabilities are. The filters then cut the "
             "tail before the draw: an x on the red line (the current T) marks the smallest "
             "probability each active filter keeps. Greedy decoding ignores T and takes the top token.",
        formula="p_i = exp(z_i / T) / sum_j exp(z_j / T)",
    ),
}
"""Keyed by pane id: the main screen's panes, then ``inside_*`` for the Inside screen."""


def explain(pane_id: str) -> Explanation:
    """The explanation of a pane (KeyError names the known ids)."""
    try:
        return EXPLANATIONS[pane_id]
    except KeyError:
        raise KeyError(f"no explanation for pane {pane_id!r}; known: {', '.join(EXPLANATIONS)}") from None
