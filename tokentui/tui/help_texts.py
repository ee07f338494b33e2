"""Plain-words explanations of every pane, shown with F1 on the focused pane.

Plain data (no UI import): a title, what the pane shows, how to read it, and the formula
in one line. Written for a student meeting a language model for the first time; every
statement matches what tokentui computes (see ``engine/sampling.py``,
``engine/analysis/`` and ``engine/constraints.py``).

:func:`explanation` is the one entry: ``explanation(pane_id, no_color=True)`` gives the text
for a terminal without colour (NO_COLOR), which describes the glyphs and text styles drawn
there (bold, plain, dim, underline, reverse; lighter and darker shades) instead of colours.
Layers and heads are numbered from 0 everywhere (app, CLI, JSON, exports).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


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
        shows="The prompt (in two alternating greys, so you can see where one token ends) and the "
              "completion so far, one piece per token, each coloured by how likely the model found "
              "the token it took.",
        read="A token is often a piece of a word, with its leading space (shown as ·). c cycles "
             "what the colours mean, named on the pane's bottom line. bands (the default): green "
             "above 70%, yellow-green 50-70%, yellow 30-50%, orange 10-30%, red below 10% (a "
             "surprise). probability: red (0) through yellow to green (1). entropy: blue (the "
             "model was certain) to magenta (6 bits or more: unsure). rank: green = the most likely "
             "token, yellow = second, orange = 3rd-5th, red = 6th or lower. Move the cursor to a "
             "token to see the alternatives it was chosen from, or press i to look inside the "
             "model there.",
        formula="surprise = -log2 p(token | everything before it)   (bits)",
    ),
    "alternatives": Explanation(
        title="Alternatives",
        shows="The most likely next tokens at the selected step: the raw probability p_base, the "
              "probability after the sampling settings p_final, and whether each survived the "
              "filters.",
        read="p_base is what the model itself believes. p_final is what the sampler actually drew "
             "from: temperature reshapes it, top-k/top-p/min-p set the cut tokens to 0 and the rest "
             "is rescaled to sum to 1. Pick another row to branch the story from that token. "
             "While a run generates, the table does not follow each new token (redrawing it would "
             "slow the model): it fills when the run stops, or at once for a token you move to.",
        formula="p_base_i = exp(z_i) / sum_j exp(z_j),  z = the model's logits",
    ),
    "attention": Explanation(
        title="Attention",
        shows="One layer's attention over the whole sequence: one row per token (the query, "
              "labelled on the left with its position and piece), one column per earlier token "
              "(the key, labelled on top with its piece, or with its position when a piece does "
              "not fit). Blue cells, brighter = more; the cursor's row is amber and marked ▶. The "
              "last line names the three tokens the cursor's token attends to most.",
        read="Each row of weights is non-negative and sums to 1 over the earlier tokens; a row is "
             "shaded against its own largest weight. [ and ] change the layer, { and } the head "
             "(or the mean of the heads); layers and heads are numbered from 0, as in the CLI "
             "(--layer, --head) and the JSON. Many heads park their attention on the first token "
             "(an 'attention sink'). Attention is one ingredient of the computation, not a full "
             "explanation of why a token was chosen.",
        formula="a_ij = softmax_j(q_i · k_j / sqrt(d_head)),  j <= i;  cell = a_ij / max_k a_ik",
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
              "settings, one bar each, rank 1 at the top). Bottom: for every step of the branch, "
              "the entropy of the distribution and the surprisal of the token that was taken, both in bits.",
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
    # ----- more main-screen panes ----------------------------------------------------------
    "constraint": Explanation(
        title="Constraint",
        shows="A rule the completion must follow: a choice (one option a line), a regular "
              "expression, a Lark grammar or a JSON schema. While it is on, every step only allows "
              "the tokens that can still lead to a complete match; the switch says whether one is "
              "in force.",
        read="Forbidden tokens get probability 0 after the sampling filters and the rest is "
             "rescaled; they stay in the Alternatives table with a ✗ and a 'why' column. The "
             "reasons, in full: 'the <kind> allows only ...' (at most four tokens fit here, listed); "
             "'the <kind> requires ... next' (the rule forces these bytes now); 'the <kind> is not "
             "complete yet' (an end-of-text token before the match is complete); 'the <kind> is "
             "complete: only the end may follow' (the match is done, only end-of-text is allowed); "
             "'not allowed by the <kind> here' (any other forbidden token); 'the branch already "
             "breaks the constraint' (a forced or earlier token broke it: rewind before it or turn "
             "the constraint off). 'cut' means allowed by the rule but removed by top-k/top-p/min-p; "
             "'invalid' shows while the reason is being worked out.",
        formula="p_final_i = 0 if token i cannot extend a match; "
                "else p_i / sum of p_j over the allowed tokens j",
    ),
    "attribution": Explanation(
        title="Attribution",
        shows="After a on a completion token (the target): how much each earlier token drove it, "
              "drawn on the tokens themselves in a heat scale, from cold grey (little) through "
              "orange to pale yellow (most); the target in underlined bold blue, tokens after it in "
              "dark grey.",
        read="Gradient methods (saliency, input x gradient, integrated gradients, gradient SHAP, "
             "DeepLift) ask: if this token's embedding changed, how much would the target's "
             "log-probability move? Attention methods read the attention weights instead. Each "
             "score is reduced per token (l2: how much; sum: which way), then divided by the "
             "largest |score| in the row, so the strongest token is always 1. A high score is "
             "influence, not proof of reasoning. A cycles the method, o sets the options, J saves "
             "the scores as JSON (open it again with tokentui attribute --open FILE).",
        formula="score_j = reduce_d(attribution of log p(target) to embedding_j);  "
                "shade_j = |score_j| / max_k |score_k|",
    ),
    # ----- screens -------------------------------------------------------------------------
    "branches": Explanation(
        title="Branch list",
        shows="Every branch of the story: its id and name, the branch it left (parent), the "
              "position where it forks, the token it took there and its probability, what the "
              "parent took there instead and its probability, its length, why it ended and its text.",
        read="A branch is made when you pick another alternative at a token, force text, or "
             "explore. It shares every token before the fork with its parent, so only the part "
             "after the fork is new (the model's cache of the shared prefix is reused). enter "
             "switches to a branch, r renames, d deletes (its children are re-attached to its parent).",
        formula="p = p_final of the token taken at the fork (the parent's column: its own pick)",
    ),
    "compare": Explanation(
        title="Compare branches",
        shows="Two branches aligned at their fork: the shared top-10 at the fork with each "
              "branch's pick marked, then step by step each branch's token, its probability p, "
              "the entropy H in bits, and how far the two next-token distributions are apart "
              "(KL, in bits); for the highlighted step both top-10 side by side and the "
              "probability mass that moved (Δ = p_B - p_A).",
        read="KL(A || B) is 0 when the two distributions agree and grows as B gives little "
             "probability to what A finds likely; 1 bit is a lot. By default it is estimated from "
             "the recorded top-N of each side: a token one side did not record gets an equal share "
             "of that side's leftover mass, and the rest of the vocabulary is one bucket, which can "
             "only make the estimate lower than the truth. k recomputes the exact KL over the whole "
             "vocabulary (two forward passes per position; a server that returns only its top-N "
             "cannot). The title says which you see.",
        formula="KL(p_A || p_B) = sum_i p_A(i) log2( p_A(i) / p_B(i) )   (bits, over p_base)",
    ),
    "explore": Explanation(
        title="Explore",
        shows="Automatic branching: at the N most critical positions of the current branch, the "
              "top M alternatives each become a new branch that grows K tokens. The tree shows "
              "each new branch's fork position, the token it took, its text and the joint "
              "probability of its completion.",
        read="A position is critical when the model nearly took another token there: the margin "
             "between its two most likely tokens (p_final) is small, and the entropy breaks ties. "
             "The joint probability multiplies p_base of every token of a branch, so long "
             "branches get small numbers: compare branches of the same length. enter on a branch "
             "switches to it; escape stops a run (branches made so far stay).",
        formula="margin = p_final(top 1) - p_final(top 2);  joint p = prod_t p_base(token_t)",
    ),
    "chat": Explanation(
        title="Chat",
        shows="The conversation of the current branch, message by message with its role "
              "(system, user, assistant), and a field for the next user message.",
        read="A chat model sees the whole conversation wrapped in its chat template. Sending a "
             "message appends it and the template's marker for the assistant's turn to this branch; "
             "the model then answers token by token as usual.",
        formula="ids = tokenizer(chat_template(messages + [next user message]))",
    ),
    "model": Explanation(
        title="Model",
        shows="Which model to load: a Hugging Face id, a local folder, a .gguf file or the "
              "bundled default, with the device and the number type (dtype); recently used models "
              "one key away.",
        read="Loading runs in the background; the current model and session stay until the new "
             "one is ready, and a failure is one line. float32 is exact and the largest; float16 "
             "and bfloat16 halve the memory. A .gguf file is converted once and cached.",
        formula="memory ≈ parameters × bytes per number (4 for float32, 2 for float16/bfloat16)",
    ),
    "force": Explanation(
        title="Force text",
        shows="A text to append to the completion as if the model had written it.",
        read="The text is cut into tokens and each is appended with the probabilities the model "
             "gave it, so you can see how surprising your text was to the model. \\n types a "
             "newline.",
        formula="surprise of each forced token = -log2 p(token | everything before it)",
    ),
    "save": Explanation(
        title="Save session",
        shows="The file the session (prompt, parameters, every branch) is saved to.",
        read="Open it again with tokentui --session FILE. The file holds token ids and "
             "parameters, so replaying it with the same model gives the same tokens.",
        formula="(no formula: a JSON file)",
    ),
    "attribution_options": Explanation(
        title="Attribution options",
        shows="How a attributes: the method, the per-token reduction, the integration steps "
              "and the baseline token.",
        read="l2 takes the length of a token's score vector (how much, never negative); sum "
             "adds its entries (which way: positive pushed the target up). Integrated gradients "
             "walks from the baseline (pad, eos, unk or a token id) to the real embedding in "
             "n steps: more steps, a smaller convergence delta, a slower answer.",
        formula="IG_j = (x_j - x'_j) · (1/n) sum_k grad f(x' + (k/n)(x - x'))_j",
    ),
    "attribution_file": Explanation(
        title="Saved attribution",
        shows="An attribution saved as JSON (J in the app, tokentui attribute --json), drawn "
              "again as a heatmap: context tokens down, output (target) tokens across.",
        read="Each column is one output token: how much every token before it drove it, "
             "divided by that column's largest |score|, so the strongest token in each column is "
             "1. A dot means the token comes at or after the output token and cannot drive it.",
        formula="cell = |score(context token, output token)| / max over the column",
    ),
    "score": Explanation(
        title="Score a text",
        shows="A text the model did not write, read by the model token by token: each token's "
              "probability given everything before it, its rank among all candidates, and the "
              "model's top alternatives there. The text becomes the current branch as given "
              "tokens; this list shows its most surprising tokens.",
        read="A token of rank 1 is what the model expected; a high rank or a low p is a surprise. "
             "The stream shows the tokens by rank bucket (1, 2-10, 11-100, 101-1000, beyond). "
             "enter moves to a surprise; there, up/down and enter on an alternative branch the "
             "text at that token and n/g continue it: what the model would have written instead. "
             "The first token has nothing before it, so it has no probability.",
        formula="surprisal = -log2 p(token | text before it);  perplexity = exp(mean -ln p)",
    ),
    "lockstep": Explanation(
        title="Two models in lockstep",
        shows="The current branch read by two models at once (A, this session's model, and B, "
              "chosen in the model dialog): both top-10 side by side, each candidate with its "
              "rank under the other model, and per token how far apart the two distributions are.",
        read="KL(A||B) is how surprised B is by A's distribution, in bits; it is 0 only when they "
             "agree. Jensen-Shannon is the symmetric version, between 0 and 1 bit. Overlap counts "
             "the tokens the two top-10 share. The strip has one cell per token, taller (or "
             "stronger) where JS is larger; j/k jump to the next largest divergence, d swaps "
             "which model picks the tokens. With a server on either side the numbers are "
             "estimated from the tokens the server returned.",
        formula="KL(A||B) = sum_i pA(i) log2(pA(i)/pB(i));  JS = KL(A||M)/2 + KL(B||M)/2, "
                "M = (pA + pB)/2",
    ),
    "graph": Explanation(
        title="3D attention graph",
        shows="e writes the attention of the sequence as an HTML page: tokens are points, an "
              "edge joins a token to an earlier token it attends to with at least the threshold "
              "weight; a point's size is the attention it receives.",
        read="The layout is a seeded spring layout: tokens that attend to each other strongly are "
             "pulled together. Edges are coloured by weight (or by layer with --all-layers). The "
             "first token usually takes most of the attention (an 'attention sink') without "
             "carrying meaning, so by default its column is dropped and each row renormalised over "
             "the other earlier tokens; --keep-sink shows the raw weights.",
        formula="w_ij = mean over heads a_hij (sink dropped: a_ij / sum_{k>=1} a_ik);  "
                "edge if j < i and w_ij >= threshold",
    ),
    "help": Explanation(
        title="Help",
        shows="Every key of the app and a short explanation of each pane.",
        read="F1 on a pane (or on a screen) gives that pane's longer explanation with its formula. "
             "Layers and heads are numbered from 0, as in the CLI and the JSON.",
        formula="(no formula)",
    ),
    "confirm": Explanation(
        title="Confirm",
        shows="A question before something that cannot be undone: quitting with unsaved branches, "
              "or a new prompt that discards the branches.",
        read="The default answer keeps your work. escape answers no.",
        formula="(no formula)",
    ),
    "inside": Explanation(
        title="Inside the model",
        shows="Everything the model did with one token: the piece and its bytes, its embedding, "
              "how its position is encoded, the logit lens, attention by layer and the temperature "
              "knob. ←/→ move to the neighbouring token.",
        read="Read the panes in the order the model computes them: the token id is looked up in "
             "the embedding table, the position is mixed in, each layer adds to the running vector "
             "(the logit lens reads it after every layer), attention moves information between "
             "positions, and the last layer's logits go through the sampling settings (temperature "
             "knob). F1 on a pane explains that pane.",
        formula="x = W_E[id];  for layer l = 0 .. L-1: x = x + block_l(x);  p = softmax(W_U · norm(x) / T)",
    ),
}
"""Keyed by pane id: the main screen's panes, the screens, then ``inside_*`` for the Inside screen."""


NO_COLOR_TEXT: dict[str, dict[str, str]] = {
    "token_stream": {
        "shows": "The prompt (plain text) and the completion so far, one piece per token, each drawn "
                 "in a text style that says how likely the model found the token it took.",
        "read": "A token is often a piece of a word, with its leading space (shown as ·). Here the "
                "styles mean, in the default bands mode: bold above 70%, plain 50-70%, "
                "dim 30-50%, underlined 10-30%, reverse video below 10% (a surprise). c cycles the "
                "mode, named on the pane's bottom line with the styles drawn: probability uses the "
                "same bands; entropy: bold below 1.5 bits (certain), plain to 3, dim to 4.5, "
                "underlined to 6, reverse from 6 bits (unsure); rank: bold = the most likely token, "
                "plain = second, underlined = 3rd-5th, reverse = 6th or lower. Move the cursor to a "
                "token to see the alternatives it was chosen from, or press i to look inside the "
                "model there.",
    },
    "attention": {
        "shows": "One layer's attention over the whole sequence: one row per token (the query, "
                 "labelled on the left with its position and piece), one column per earlier token "
                 "(the key, labelled on top with its piece, or with its position when a piece does "
                 "not fit). Lighter cells mean more attention, dark cells little; the cursor's row "
                 "is marked ▶. The last line names the three tokens the cursor's token attends to most.",
    },
    "attribution": {
        "shows": "After a on a completion token (the target): how much each earlier token drove it, "
                 "drawn on the tokens themselves in five text styles from least to most: dim, "
                 "plain, bold, underlined, reverse video. The target is bold italic underlined; "
                 "tokens after it are dim.",
    },
    "constraint": {
        "read": "Forbidden tokens get probability 0 after the sampling filters and the rest is "
                "rescaled; they stay in the Alternatives table marked ✗ with a 'why' column. The "
                "reasons, in full: 'the <kind> allows only ...' (at most four tokens fit here, "
                "listed); 'the <kind> requires ... next' (the rule forces these bytes now); 'the "
                "<kind> is not complete yet' (an end-of-text token before the match is complete); "
                "'the <kind> is complete: only the end may follow' (the match is done, only "
                "end-of-text is allowed); 'not allowed by the <kind> here' (any other forbidden "
                "token); 'the branch already breaks the constraint' (a forced or earlier token broke "
                "it: rewind before it or turn the constraint off). 'cut' means allowed by the rule "
                "but removed by top-k/top-p/min-p; 'invalid' shows while the reason is being worked out.",
    },
    "graph": {
        "read": "The layout is a seeded spring layout: tokens that attend to each other strongly are "
                "pulled together. The page is drawn by a browser, which ignores NO_COLOR: "
                "the edge shade follows the weight (or the layer with --all-layers), with a scale at the "
                "right. The first token usually takes most of the attention (an 'attention sink') "
                "without carrying meaning, so by default its column is dropped and each row "
                "renormalised over the other earlier tokens; --keep-sink shows the raw weights.",
    },
    "inside_logit_lens": {
        "read": "Read from the top (layer 0, after the first block) down: the guess usually starts "
                "vague or generic and settles on the answer in the later layers. The last row is "
                "exactly the model's real next-token distribution (p_base, before the sampling "
                "settings). The token that really follows is marked ▸ and bold wherever it appears, "
                "and the 'actual' column gives its rank and probability in every layer. Early layers "
                "were not trained to be read this way, so treat them as a rough view.",
    },
    "inside_attention": {
        "shows": "For this position, one row per layer (numbered from 0): the attention to each "
                 "earlier token (and itself) averaged over the heads, a lighter shade = more; on "
                 "the right, the heads' entropy averaged over the heads.",
    },
    "inside_temperature": {
        "read": "Dividing the logits by T below 1 sharpens the distribution towards the favourite; "
                "above 1 flattens it so unlikely tokens get more chances. The order of the tokens "
                "never changes, only how far apart their probabilities are. The filters then cut "
                "the tail before the draw: an x on the vertical line (the current T) marks the "
                "smallest probability each active filter keeps. Greedy decoding ignores T and takes "
                "the top token.",
    },
}
"""Field overrides for a terminal without colour: what the glyphs and text styles mean there."""

COLOUR_WORDS = ("red", "green", "blue", "yellow", "amber", "orange", "grey", "gray", "magenta",
                "cyan", "purple", "pink", "violet", "colour", "color", "coloured", "colored")
"""Words a NO_COLOR explanation never uses (a test holds every text to it)."""

HELP_ORDER: tuple[str, ...] = (
    "prompt", "token_stream", "alternatives", "params", "attention", "charts", "constraint",
    "status", "attribution", "branches", "compare", "explore", "inside", "graph",
)
"""The panes and screens the ``?`` help screen explains, in reading order."""


def explanation(pane_id: str, no_color: bool = False) -> Explanation:
    """The explanation of a pane or screen; ``no_color`` describes glyphs and styles, not
    colours (KeyError names the known ids)."""
    base = explain(pane_id)
    if not no_color:
        return base
    return replace(base, **NO_COLOR_TEXT.get(pane_id, {}))


def explain(pane_id: str) -> Explanation:
    """The explanation of a pane (KeyError names the known ids)."""
    try:
        return EXPLANATIONS[pane_id]
    except KeyError:
        raise KeyError(f"no explanation for pane {pane_id!r}; known: {', '.join(EXPLANATIONS)}") from None
