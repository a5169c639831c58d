using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>Result of one MAE forward pass. Dispose it (or let a dispose scope do so).</summary>
/// <param name="Loss">Scalar MSE on removed patches.</param>
/// <param name="Pred">[N, L, p*p*C] predicted (normalised, when norm_pix_loss) pixels of every patch.</param>
/// <param name="Mask">[N, L] 1 = removed, 0 = visible, in original patch order.</param>
/// <param name="IdsRestore">[N, L] int64 permutation that unshuffles the kept+masked sequence.</param>
public sealed record MaeOutput(Tensor Loss, Tensor Pred, Tensor Mask, Tensor IdsRestore) : IDisposable
{
    /// <summary>Disposes the four tensors.</summary>
    public void Dispose() { Loss.Dispose(); Pred.Dispose(); Mask.Dispose(); IdsRestore.Dispose(); }
}

/// <summary>
/// Masked Autoencoder with a Vision Transformer backbone, a one-to-one port of the official <c>models_mae.py</c>.
/// Field names follow the official state-dict keys (<c>patch_embed.proj</c>, <c>cls_token</c>, <c>pos_embed</c>,
/// <c>blocks.N</c>, <c>norm</c>, <c>decoder_embed</c>, <c>mask_token</c>, <c>decoder_pos_embed</c>,
/// <c>decoder_blocks.N</c>, <c>decoder_norm</c>, <c>decoder_pred</c>) so checkpoints map one to one.
/// </summary>
public sealed class MaskedAutoencoderViT : VitEncoder<MaeOutput>
{
    // --- encoder: patch_embed, cls_token, pos_embed (fixed sin-cos, requires_grad = false), blocks, norm (VitEncoder) ---
    // --- decoder ---
    readonly Linear decoder_embed;
    readonly Parameter mask_token;
    readonly Parameter decoder_pos_embed;  // fixed sin-cos, requires_grad = false
    readonly ModuleList<Block> decoder_blocks;
    readonly LayerNorm decoder_norm;
    readonly Linear decoder_pred;

    /// <summary>The architecture this model was built with.</summary>
    public MaeConfig Config { get; }

    /// <summary>A model of <paramref name="config"/> (validated), initialised by <see cref="InitializeWeights"/> from torch's global RNG.</summary>
    /// <exception cref="ArgumentException">The configuration is invalid or not square (MAE pretraining takes square images, as the official <c>patchify</c> asserts).</exception>
    public MaskedAutoencoderViT(MaeConfig config) : base(nameof(MaskedAutoencoderViT), Square(config), fixedPositions: true, withNorm: true)
    {
        Config = config;
        var c = config;
        decoder_embed = nn.Linear(c.EmbedDim, c.DecoderEmbedDim);
        mask_token = new Parameter(zeros(1, 1, c.DecoderEmbedDim));
        decoder_pos_embed = new Parameter(zeros(1, c.NumPatches + 1, c.DecoderEmbedDim), requires_grad: false);
        decoder_blocks = nn.ModuleList(Enumerable.Range(0, c.DecoderDepth).Select(_ => new Block(c.DecoderEmbedDim, c.DecoderNumHeads, c.MlpRatio, c.LayerNormEps)).ToArray());
        decoder_norm = nn.LayerNorm(c.DecoderEmbedDim, c.LayerNormEps);
        decoder_pred = nn.Linear(c.DecoderEmbedDim, c.PatchDim);
        // registered after the encoder's parts, in the official order
        register_module(nameof(decoder_embed), decoder_embed);
        register_parameter(nameof(mask_token), mask_token);
        register_parameter(nameof(decoder_pos_embed), decoder_pos_embed);
        register_module(nameof(decoder_blocks), decoder_blocks);
        register_module(nameof(decoder_norm), decoder_norm);
        register_module(nameof(decoder_pred), decoder_pred);
        InitializeWeights();
    }

    static MaeConfig Square(MaeConfig c) => c.IsSquare ? c
        : throw new ArgumentException($"MAE pretraining takes square images (the official patchify asserts H == W), this configuration is {c.InputSize}: non-square inputs are for the dense models (VitClassifierConfig.Backbone)");

    /// <summary>Official <c>initialize_weights</c>: fixed sin-cos tables, xavier-uniform patch projection (as a linear)
    /// and linears (zero bias), N(0, 0.02) cls and mask tokens, LayerNorm 1/0. Seed with <c>torch.manual_seed</c> first.</summary>
    public void InitializeWeights()
    {
        using var _ = no_grad();
        var c = Config;
        InitializeEncoderWeights();
        decoder_pos_embed.copy_(tensor(PositionEmbedding.SinCos2D(c.DecoderEmbedDim, c.GridSize, clsToken: true)).unsqueeze(0));
        nn.init.normal_(mask_token, std: 0.02);
        VitInit.XavierLinearsUnitNorms(this);
    }

    // ---------------------------------------------------------------- helpers (pure)

    /// <summary>imgs [N, C, H, W] -> [N, L, p*p*C], per-patch values ordered (pi, pj, c), c fastest.</summary>
    public static Tensor Patchify(Tensor imgs, int p)
    {
        long n = imgs.shape[0], c = imgs.shape[1], h = imgs.shape[2] / p, w = imgs.shape[3] / p;
        using var x = imgs.reshape(n, c, h, p, w, p);
        using var y = x.permute(0, 2, 4, 3, 5, 1);  // nchpwq -> nhwpqc
        return y.reshape(n, h * w, p * p * c);
    }

    /// <summary>[N, L, p*p*C] -> imgs [N, C, H, W] (square images).</summary>
    public static Tensor Unpatchify(Tensor x, int p, int inChans = 3)
    {
        long n = x.shape[0], h = (long)Math.Round(Math.Sqrt(x.shape[1])), w = h;
        if (h * w != x.shape[1]) throw new ArgumentException($"Unpatchify needs a square number of patches, got {x.shape[1]}");
        using var y = x.reshape(n, h, w, p, p, inChans);
        using var z = y.permute(0, 5, 1, 3, 2, 4);   // nhwpqc -> nchpwq
        return z.reshape(n, inChans, h * p, w * p);
    }

    /// <summary>
    /// Per-sample random masking by argsort of noise (small noise = keep). x [N, L, D], noise [N, L] (uniform when null).
    /// Returns the kept tokens [N, len_keep, D] in shuffled order, the mask [N, L] (1 = removed) and ids_restore [N, L].
    /// </summary>
    public static (Tensor XMasked, Tensor Mask, Tensor IdsRestore) RandomMasking(Tensor x, double maskRatio, Tensor? noise = null, Generator? generator = null)
    {
        long n = x.shape[0], l = x.shape[1], d = x.shape[2];
        int lenKeep = (int)(l * (1 - maskRatio));
        using var scope = NewDisposeScope();
        noise ??= rand(new[] { n, l }, device: x.device, generator: generator);
        if (noise.shape.Length != 2 || noise.shape[0] != n || noise.shape[1] != l)
            throw new ArgumentException($"noise must be [N, L] = [{n}, {l}], got [{string.Join(", ", noise.shape)}]");
        var idsShuffle = argsort(noise, dim: 1);                 // ascend: small is keep
        var idsRestore = argsort(idsShuffle, dim: 1);
        var idsKeep = idsShuffle[.., ..lenKeep];
        var xMasked = gather(x, 1, idsKeep.unsqueeze(-1).expand(n, lenKeep, d));
        var mask = ones(new[] { n, l }, dtype: x.dtype, device: x.device);
        mask[.., ..lenKeep] = zeros(1, dtype: x.dtype);
        mask = gather(mask, 1, idsRestore);                      // unshuffle: 1 = removed
        return (xMasked.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), idsRestore.MoveToOuterDisposeScope());
    }

    // ---------------------------------------------------------------- forward

    /// <summary>Encoder on the visible patches only. imgs [N, C, H, W] -> latent [N, 1+len_keep, D].</summary>
    public (Tensor Latent, Tensor Mask, Tensor IdsRestore) ForwardEncoder(Tensor imgs, double maskRatio, Tensor? noise = null, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var x = EmbedPatches(imgs);                                          // [N, L, D]
        var (kept, mask, idsRestore) = RandomMasking(x, maskRatio, noise, generator);
        x = cat(new[] { ClsTokens(kept.shape[0]), kept }, 1);                // [N, 1+len_keep, D]
        x = norm!.forward(RunBlocks(x));
        return (x.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), idsRestore.MoveToOuterDisposeScope());
    }

    /// <summary>Encoder on all patches (no masking): [N, 1+L, D] after the final norm. Used by feature extraction and export.</summary>
    public Tensor ForwardFeatures(Tensor imgs)
    {
        using var tokens = ForwardTokens(imgs);
        return norm!.forward(tokens);
    }

    /// <summary>Decoder: latent [N, 1+len_keep, D] -> pixel predictions [N, L, p*p*C].</summary>
    public Tensor ForwardDecoder(Tensor latent, Tensor idsRestore)
    {
        using var scope = NewDisposeScope();
        var x = decoder_embed.forward(latent);                               // [N, 1+K, Dd]
        long n = x.shape[0], l = idsRestore.shape[1], dd = x.shape[2];
        var maskTokens = mask_token.expand(n, l + 1 - x.shape[1], dd);
        var tokens = cat(new[] { x[.., 1..], maskTokens }, 1);               // [N, L, Dd], no cls
        tokens = gather(tokens, 1, idsRestore.unsqueeze(-1).expand(n, l, dd)); // unshuffle
        x = cat(new[] { x[.., ..1], tokens }, 1).add(decoder_pos_embed, Scalars.One); // [N, 1+L, Dd]
        foreach (var blk in decoder_blocks) x = blk.forward(x);
        x = decoder_pred.forward(decoder_norm.forward(x));
        return x[.., 1..].MoveToOuterDisposeScope();                         // drop cls
    }

    /// <summary>MSE on removed patches. imgs [N, C, H, W], pred [N, L, p*p*C], mask [N, L].
    /// With norm_pix_loss the target is normalised per patch (unbiased variance, eps 1e-6).</summary>
    public Tensor ForwardLoss(Tensor imgs, Tensor pred, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var target = PatchTarget(imgs);
        var perPatch = pred.sub(target).pow(Scalars.Two).mean(new long[] { -1 });   // [N, L]  (square() = pow(2) with a temporary Scalar)
        return ((perPatch * mask).sum() / mask.sum()).MoveToOuterDisposeScope();
    }

    /// <summary>The regression target: patchified pixels, normalised per patch when <see cref="MaeConfig.NormPixLoss"/>.</summary>
    public Tensor PatchTarget(Tensor imgs)
    {
        using var scope = NewDisposeScope();
        var target = Patchify(imgs, Config.PatchSize);
        if (Config.NormPixLoss)
        {
            var (variance, mean) = var_mean(target, new long[] { -1 }, unbiased: true, keepdim: true);
            target = target.sub(mean).div(variance.add(Scalars.NormPixEps, Scalars.One).sqrt());
        }
        return target.MoveToOuterDisposeScope();
    }

    /// <summary>Full pass with the configured mask ratio and fresh uniform noise.</summary>
    public override MaeOutput forward(Tensor imgs) => Forward(imgs);

    /// <summary>Full pass. Pass <paramref name="noise"/> [N, L] (as Hugging Face's ViTMAE does) for a reproducible mask.</summary>
    public MaeOutput Forward(Tensor imgs, Tensor? noise = null, double? maskRatio = null, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        // a bfloat16 copy of the model (mixed precision) computes in bfloat16; the loss is always float32
        var dtype = cls_token.dtype;
        var input = imgs.dtype == dtype ? imgs : imgs.to_type(dtype);
        var (latent, mask, idsRestore) = ForwardEncoder(input, maskRatio ?? Config.MaskRatio, noise, generator);
        var pred = ForwardDecoder(latent, idsRestore);
        if (pred.dtype != ScalarType.Float32) { pred = pred.to_type(ScalarType.Float32); mask = mask.to_type(ScalarType.Float32); }
        var target = imgs.dtype == ScalarType.Float32 ? imgs : imgs.to_type(ScalarType.Float32);
        var loss = ForwardLoss(target, pred, mask);
        return new MaeOutput(loss.MoveToOuterDisposeScope(), pred.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), idsRestore.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The design MAE replaced, for benchmarks: the encoder runs on all 1+L tokens, removed patches replaced by a (zero)
    /// mask token plus their position embedding, and the decoder (no unshuffle needed) predicts every patch; same loss.
    /// Costs what a BEiT/SimMIM-style symmetric masked model costs with this architecture.
    /// </summary>
    public MaeOutput ForwardFullSequenceBaseline(Tensor imgs, Tensor noise, double? maskRatio = null)
    {
        using var scope = NewDisposeScope();
        var dtype = cls_token.dtype;
        var input = imgs.dtype == dtype ? imgs : imgs.to_type(dtype);
        var tokens = patch_embed.forward(input);                                         // [N, L, D]
        long n = tokens.shape[0], l = tokens.shape[1];
        var (_, mask, idsRestore) = RandomMasking(tokens, maskRatio ?? Config.MaskRatio, noise);
        var keep = ones_like(mask, dtype: dtype).sub_(mask.to_type(dtype));
        var x = tokens.mul(keep.unsqueeze(-1)).add(pos_embed[.., 1..], Scalars.One);  // mask token = 0 at removed positions
        x = cat(new[] { ClsTokens(n), x }, 1);                                            // [N, 1+L, D]
        x = decoder_embed.forward(norm!.forward(RunBlocks(x))).add(decoder_pos_embed, Scalars.One); // [N, 1+L, Dd]
        foreach (var blk in decoder_blocks) x = blk.forward(x);
        var pred = decoder_pred.forward(decoder_norm.forward(x))[.., 1..].to_type(ScalarType.Float32);
        var mask32 = mask.to_type(ScalarType.Float32);
        var loss = ForwardLoss(imgs.to_type(ScalarType.Float32), pred, mask32);
        return new MaeOutput(loss.MoveToOuterDisposeScope(), pred.MoveToOuterDisposeScope(), mask32.MoveToOuterDisposeScope(), idsRestore.MoveToOuterDisposeScope());
    }

    /// <summary>Encoder parameters (everything that is not decoder), by state-dict name.</summary>
    public static bool IsEncoderKey(string name) =>
        !(name.StartsWith("decoder_") || name == "mask_token");
}
