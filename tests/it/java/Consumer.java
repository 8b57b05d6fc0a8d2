// The Ministry of Education's client of the fund's contract, in Java
// (grpc-java over Netty): the ministry's certificate, the platform CA, and
// the jisr-* metadata, as docs/stacks.md shows. Prints one line.
//
// Usage: Consumer PKI_DIR HOST PORT SERVER_NAME
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import java.io.File;
import java.util.concurrent.TimeUnit;
import ma.socialsecurity.v1.CoverageGrpc;
import ma.socialsecurity.v1.CoverageOuterClass.CoverageStatus;
import ma.socialsecurity.v1.CoverageOuterClass.GetCoverageRequest;

public final class Consumer {
    public static void main(String[] args) throws Exception {
        File pki = new File(args[0]);
        ManagedChannel channel = NettyChannelBuilder.forAddress(args[1], Integer.parseInt(args[2]))
            .sslContext(GrpcSslContexts.forClient().trustManager(new File(pki, "ca.crt"))
                .keyManager(new File(pki, "education.crt"), new File(pki, "education.key"))
                .protocols("TLSv1.3").build())
            .overrideAuthority(args[3]).build();
        Metadata md = new Metadata();
        md.put(Metadata.Key.of("jisr-purpose", Metadata.ASCII_STRING_MARSHALLER), "school-grant");
        md.put(Metadata.Key.of("jisr-procedure", Metadata.ASCII_STRING_MARSHALLER), "school-grant-2027");
        md.put(Metadata.Key.of("jisr-official", Metadata.ASCII_STRING_MARSHALLER), "education.agent-017");
        var stub = CoverageGrpc.newBlockingStub(channel)
            .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md));
        try {
            CoverageStatus reply = stub.withDeadlineAfter(10, TimeUnit.SECONDS)
                .getCoverage(GetCoverageRequest.newBuilder().setCitizenId("AB123456").build());
            System.out.println("covered=" + reply.getCovered() + " scheme=" + reply.getScheme()
                + " valid_until=" + reply.getValidUntil());
        } catch (StatusRuntimeException e) {
            System.out.println("code=" + e.getStatus().getCode() + " message=" + e.getStatus().getDescription());
            if (e.getCause() != null) {
                e.getCause().printStackTrace();
            }
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }
}
