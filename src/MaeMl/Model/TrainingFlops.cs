namespace MaeMl.Model;

/// <summary>
/// Analytic floating-point operation counts of one MAE training step (forward + backward), counting matrix products
/// only (2 FLOPs per multiply-add; backward = 2x forward, except the patch projection whose input needs no gradient).
/// Elementwise work (norms, GELU, softmax, optimizer) is left out, so achieved rates are slight underestimates.
/// </summary>
public static class TrainingFlops
{
    static double Block(long tokens, int dim, double mlpRatio) =>
        2.0 * tokens * dim * (3.0 * dim + dim + 2.0 * dim * mlpRatio);      // qkv, proj, fc1, fc2

    static double Attention(long batch, long seq, int dim) => 2.0 * 2.0 * batch * seq * seq * dim; // q k^T and attn v

    /// <summary>FLOPs of one MAE step (encoder on 1+len_keep tokens, decoder on 1+L).</summary>
    public static double MaeStep(MaeConfig c, int batch) => Step(c, batch, 1 + c.LenKeep);

    /// <summary>FLOPs of one step of the full-sequence baseline (encoder on 1+L tokens).</summary>
    public static double FullSequenceStep(MaeConfig c, int batch) => Step(c, batch, 1 + c.NumPatches);

    static double Step(MaeConfig c, int batch, int encoderSeq)
    {
        int decoderSeq = 1 + c.NumPatches;
        double patch = 2.0 * batch * c.NumPatches * c.PatchDim * c.EmbedDim;
        double encoder = c.Depth * (Block((long)batch * encoderSeq, c.EmbedDim, c.MlpRatio) + Attention(batch, encoderSeq, c.EmbedDim));
        double bridge = 2.0 * batch * encoderSeq * c.EmbedDim * c.DecoderEmbedDim;
        double decoder = c.DecoderDepth * (Block((long)batch * decoderSeq, c.DecoderEmbedDim, c.MlpRatio) + Attention(batch, decoderSeq, c.DecoderEmbedDim));
        double pred = 2.0 * batch * decoderSeq * c.DecoderEmbedDim * c.PatchDim;
        return 2.0 * patch + 3.0 * (encoder + bridge + decoder + pred);
    }
}
