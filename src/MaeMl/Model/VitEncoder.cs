using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>
/// The one ViT encoder of MaeMl, shared by <see cref="MaskedAutoencoderViT"/> (on the visible patches) and
/// <see cref="VisionTransformer"/> (on all patches: classifier, linear probe and dense backbone), as timm's
/// <c>VisionTransformer</c> is configured rather than copied. Parts and state-dict names are the official ones:
/// <c>patch_embed.proj</c>, <c>cls_token</c>, <c>pos_embed</c> ([1, 1+L, D], zero cls row; L = gh*gw for H x W inputs), <c>blocks.N</c> and, unless a
/// subclass pools with <c>fc_norm</c> instead, <c>norm</c>. They are registered explicitly in that order (a subclass registers
/// its own parts after them), so parameter order, and with it optimizer state and checkpoints, is the official one.
/// </summary>
public abstract class VitEncoder<TOutput> : nn.Module<Tensor, TOutput>
{
    /// <summary><c>patch_embed</c>: images [N, C, H, W] -> tokens [N, L, D].</summary>
    protected readonly PatchEmbed patch_embed;
    /// <summary><c>cls_token</c> [1, 1, D].</summary>
    protected readonly Parameter cls_token;
    /// <summary><c>pos_embed</c> [1, 1+L, D]: fixed sin-cos in MAE, learnt when fine-tuning; row 0 is the cls token's.</summary>
    protected readonly Parameter pos_embed;
    /// <summary><c>blocks</c>: the encoder's <see cref="MaeConfig.Depth"/> transformer blocks.</summary>
    protected readonly ModuleList<Block> blocks;
    /// <summary><c>norm</c>, the final LayerNorm; null when the subclass pools with <c>fc_norm</c> instead.</summary>
    protected readonly LayerNorm? norm;

    /// <param name="name">Module name.</param>
    /// <param name="encoder">Architecture (decoder fields are the subclass's business).</param>
    /// <param name="fixedPositions">The sin-cos table stays fixed (<c>requires_grad = false</c>, MAE pretraining) or is learnt (fine-tuning).</param>
    /// <param name="withNorm">Include the final <c>norm</c> (everything but mean pooling with <c>fc_norm</c>).</param>
    protected VitEncoder(string name, MaeConfig encoder, bool fixedPositions, bool withNorm) : this(name, encoder, fixedPositions, withNorm, null) { }

    /// <param name="name">Module name.</param>
    /// <param name="encoder">Architecture (decoder fields are the subclass's business).</param>
    /// <param name="fixedPositions">The sin-cos table stays fixed (<c>requires_grad = false</c>, MAE pretraining) or is learnt (fine-tuning).</param>
    /// <param name="withNorm">Include the final <c>norm</c> (everything but mean pooling with <c>fc_norm</c>).</param>
    /// <param name="attention">How the blocks attend (ViTDet's windows and relative positions); null = global everywhere.</param>
    protected VitEncoder(string name, MaeConfig encoder, bool fixedPositions, bool withNorm, BackboneAttention? attention) : base(name)
    {
        var c = encoder.Validate();
        EncoderConfig = c;
        BackboneAttention = (attention ?? BackboneAttention.Global).Validate(c.Depth);
        patch_embed = new PatchEmbed(c.InputSize.Height, c.InputSize.Width, c.PatchSize, c.InChans, c.EmbedDim);
        cls_token = new Parameter(zeros(1, 1, c.EmbedDim));
        pos_embed = new Parameter(zeros(1, c.NumPatches + 1, c.EmbedDim), requires_grad: !fixedPositions);
        blocks = VitInit.EncoderBlocks(c, BackboneAttention);
        register_module(nameof(patch_embed), patch_embed);
        register_parameter(nameof(cls_token), cls_token);
        register_parameter(nameof(pos_embed), pos_embed);
        register_module(nameof(blocks), blocks);
        if (withNorm)
        {
            norm = nn.LayerNorm(c.EmbedDim, c.LayerNormEps);
            register_module(nameof(norm), norm);
        }
    }

    /// <summary>The encoder's architecture.</summary>
    public MaeConfig EncoderConfig { get; }

    /// <summary>How the blocks attend (<see cref="BackboneAttention.Global"/> unless built with ViTDet's settings).</summary>
    public BackboneAttention BackboneAttention { get; }

    /// <summary>The official encoder initialisation: sin-cos position table (zero cls row), xavier-uniform patch projection
    /// (as a linear), N(0, 0.02) cls token. Linears and LayerNorms: <see cref="VitInit.XavierLinearsUnitNorms"/>.</summary>
    protected void InitializeEncoderWeights()
    {
        using var _ = no_grad();
        var c = EncoderConfig;
        pos_embed.copy_(tensor(PositionEmbedding.SinCos2D(c.EmbedDim, c.GridHeight, c.GridWidth, clsToken: true)).unsqueeze(0));
        using (var w = patch_embed.Proj.weight!.view(c.EmbedDim, -1)) nn.init.xavier_uniform_(w);
        nn.init.normal_(cls_token, std: 0.02);
    }

    /// <summary>imgs [N, C, H, W] -> patch tokens with their position embedding [N, L, D].</summary>
    protected Tensor EmbedPatches(Tensor imgs) => patch_embed.forward(imgs).add(pos_embed[.., 1..], Scalars.One);

    /// <summary>The cls token with its (zero) position row, [N, 1, D].</summary>
    protected Tensor ClsTokens(long n) => cls_token.add(pos_embed[.., ..1], Scalars.One).expand(n, -1, -1);

    /// <summary>The blocks over [N, T, D] tokens (cls first), or over a token grid [N, h, w, D].</summary>
    protected Tensor RunBlocks(Tensor x)
    {
        foreach (var blk in blocks) x = blk.forward(x);
        return x;
    }

    /// <summary>detectron2's ViT forward (the <see cref="BackboneAttention.TokenGrid"/> layout): the patch tokens as a grid [N, h, w, D]
    /// (h, w from the images' size) plus the position table without its cls row (<c>get_abs_pos</c>), through the blocks, before any
    /// norm; no cls token.</summary>
    public Tensor ForwardGrid(Tensor imgs)
    {
        using var scope = NewDisposeScope();
        long n = imgs.shape[0], h = imgs.shape[2] / EncoderConfig.PatchSize, w = imgs.shape[3] / EncoderConfig.PatchSize;
        var x = patch_embed.forward(imgs).reshape(n, h, w, -1);                                  // [N, h, w, D]
        x = x.add(VitDetOps.GetAbsPos(pos_embed, h, w), Scalars.One);
        return RunBlocks(x).MoveToOuterDisposeScope();
    }

    /// <summary>Every token after the blocks, before any norm: [N, 1+L, D] (all patches, no masking).</summary>
    public Tensor ForwardTokens(Tensor imgs)
    {
        using var scope = NewDisposeScope();
        var x = EmbedPatches(imgs);
        x = cat(new[] { ClsTokens(x.shape[0]), x }, 1);
        return RunBlocks(x).MoveToOuterDisposeScope();
    }
}
