using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Model;

/// <summary>Classifier settings on top of a MAE encoder configuration (the official <c>models_vit.py</c>).</summary>
/// <param name="Encoder">Encoder architecture (decoder fields are ignored).</param>
/// <param name="NumClasses">Classes of the linear head; 0 for no head (features only).</param>
/// <param name="GlobalPool">Mean of the patch tokens + <c>fc_norm</c> (the MAE fine-tuning default) instead of the cls token after <c>norm</c>.</param>
public sealed record VitClassifierConfig(MaeConfig Encoder, int NumClasses, bool GlobalPool = true)
{
    public VitClassifierConfig Validate()
    {
        Encoder.Validate();
        if (NumClasses < 0) throw new ArgumentException($"Invalid classifier configuration: num_classes must be >= 0, got {NumClasses}");
        return this;
    }
}

/// <summary>
/// Vision Transformer for fine-tuning and linear probing, as the official <c>models_vit.VisionTransformer</c>
/// (timm 0.3.2): state-dict keys <c>patch_embed.proj</c>, <c>cls_token</c>, <c>pos_embed</c> (learnable here),
/// <c>blocks.N</c>, then <c>fc_norm</c> (global pool) or <c>norm</c> (cls token), and <c>head</c>.
/// Encoder keys are those of <see cref="MaskedAutoencoderViT"/>, so pretrained weights load one to one.
/// </summary>
public sealed class VisionTransformer : nn.Module<Tensor, Tensor>
{
    readonly PatchEmbed patch_embed;
    readonly Parameter cls_token;
    readonly Parameter pos_embed;
    readonly ModuleList<Block> blocks;
    readonly LayerNorm? norm;      // cls-token pooling only
    readonly LayerNorm? fc_norm;   // global pooling only
    readonly Linear? head;

    public VitClassifierConfig Config { get; }

    public VisionTransformer(VitClassifierConfig config) : base(nameof(VisionTransformer))
    {
        Config = config.Validate();
        var c = config.Encoder;
        patch_embed = new PatchEmbed(c.ImageSize, c.PatchSize, c.InChans, c.EmbedDim);
        cls_token = new Parameter(zeros(1, 1, c.EmbedDim));
        pos_embed = new Parameter(zeros(1, c.NumPatches + 1, c.EmbedDim));
        blocks = VitInit.EncoderBlocks(c);
        if (config.GlobalPool) fc_norm = nn.LayerNorm(c.EmbedDim, c.LayerNormEps);
        else norm = nn.LayerNorm(c.EmbedDim, c.LayerNormEps);
        if (config.NumClasses > 0) head = nn.Linear(c.EmbedDim, config.NumClasses);
        RegisterComponents();
        InitializeWeights();
    }

    /// <summary>The MAE encoder's init (sin-cos position table, xavier-uniform linears and patch projection, N(0, 0.02) cls token, LayerNorm 1/0), head trunc-normal(2e-5) as MAE fine-tuning.</summary>
    public void InitializeWeights()
    {
        using var _ = no_grad();
        var c = Config.Encoder;
        pos_embed.copy_(tensor(PositionEmbedding.SinCos2D(c.EmbedDim, c.GridSize, clsToken: true)).unsqueeze(0));
        using (var w = patch_embed.Proj.weight!.view(c.EmbedDim, -1)) nn.init.xavier_uniform_(w);
        nn.init.normal_(cls_token, std: 0.02);
        VitInit.XavierLinearsUnitNorms(this);
        if (head is not null)
        {
            nn.init.trunc_normal_(head.weight!, std: 2e-5);
            nn.init.zeros_(head.bias!);
        }
    }

    /// <summary>Number of blocks + 1: the layer ids used by layer-wise lr decay (embeddings are layer 0, block i is i+1).</summary>
    public int NumLayers => Config.Encoder.Depth + 1;

    /// <summary>Pooled, normalised features [N, D] (what the head sees).</summary>
    public Tensor ForwardFeatures(Tensor imgs)
    {
        using var scope = NewDisposeScope();
        var x = patch_embed.forward(imgs);                                        // [N, L, D]
        var cls = cls_token.expand(x.shape[0], -1, -1);
        x = cat(new[] { cls, x }, 1).add(pos_embed, Scalars.One);                 // [N, 1+L, D]
        foreach (var blk in blocks) x = blk.forward(x);
        Tensor outcome = Config.GlobalPool
            ? fc_norm!.forward(x[.., 1..].mean(new long[] { 1 }))                 // [N, D]
            : norm!.forward(x)[.., 0];
        return outcome.MoveToOuterDisposeScope();
    }

    /// <summary>Logits [N, classes] (or features when there is no head).</summary>
    public override Tensor forward(Tensor imgs)
    {
        if (head is null) return ForwardFeatures(imgs);
        using var features = ForwardFeatures(imgs);
        return head.forward(features);
    }

    /// <summary>The classification head, or null.</summary>
    public Linear? Head => head;
}
